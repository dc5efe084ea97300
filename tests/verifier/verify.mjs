// Independent verifier of the tool's Open Badges 3.0 credentials, for the test suite.
//
// Verifies with @digitalbazaar/vc and the eddsa-rdfc-2022 cryptosuite, offline: the JSON-LD
// contexts come from the tool's bundled copies (lti_tool/credentials/contexts/, mapped by
// contexts/index.json there) and did:key is resolved locally; any other URL is refused.
//
// The revocation status (BitstringStatusListEntry) is checked against status list credentials
// given with --status FILE (verified themselves, then decoded here: base64url, gunzip, most
// significant bit first); a credential whose list is not given fails, as it cannot be checked.
//
// Usage: node verify.mjs [--status LIST.json ...] FILE.json [FILE.json ...]
//   prints one JSON line per file: {"file", "verified": true|false, "error"}; exits 0 when all
//   verified, 1 if not.
import {readFile} from 'node:fs/promises';
import path from 'node:path';
import {fileURLToPath} from 'node:url';
import {gunzipSync} from 'node:zlib';

import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import * as didKey from '@digitalbazaar/did-method-key';

const here = path.dirname(fileURLToPath(import.meta.url));
const contextsDir = process.env.CONTEXTS_DIR ||
  path.resolve(here, '../../lti_tool/credentials/contexts');

const index = JSON.parse(await readFile(path.join(contextsDir, 'index.json'), 'utf8'));
const contexts = new Map();
for(const [url, file] of Object.entries(index)) {
  contexts.set(url, JSON.parse(await readFile(path.join(contextsDir, file), 'utf8')));
}

const didKeyDriver = didKey.driver();
didKeyDriver.use({multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from});

async function documentLoader(url) {
  if(contexts.has(url)) {
    return {contextUrl: null, documentUrl: url, document: contexts.get(url)};
  }
  if(url.startsWith('did:key:')) {
    const document = await didKeyDriver.get({url});
    return {contextUrl: null, documentUrl: url, document};
  }
  throw new Error(`refused to load ${url}: not bundled (the verifier works offline)`);
}

const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});

const args = process.argv.slice(2);
const statusLists = new Map();
const files = [];
for(let i = 0; i < args.length; i++) {
  if(args[i] === '--status') {
    const list = JSON.parse(await readFile(args[++i], 'utf8'));
    statusLists.set(list.id, list);
  } else {
    files.push(args[i]);
  }
}

async function checkStatus({credential}) {
  const entry = credential.credentialStatus;
  if(entry.type !== 'BitstringStatusListEntry' || entry.statusPurpose !== 'revocation') {
    return {verified: false, error: new Error(`unsupported status entry ${entry.type}`)};
  }
  const list = statusLists.get(entry.statusListCredential);
  if(!list) {
    return {verified: false, error: new Error(
      `status list ${entry.statusListCredential} not given (the verifier works offline)`)};
  }
  const listResult = await vc.verifyCredential({credential: list, suite, documentLoader});
  if(!listResult.verified) {
    return {verified: false, error: new Error('the status list credential does not verify')};
  }
  if(list.issuer !== (credential.issuer.id || credential.issuer)) {
    return {verified: false, error: new Error('the status list has another issuer')};
  }
  const encoded = list.credentialSubject.encodedList;
  const bits = gunzipSync(Buffer.from(encoded.slice(1), 'base64url'));
  if(encoded[0] !== 'u' || bits.length * 8 < 131072) {
    return {verified: false, error: new Error('the status list is malformed or too short')};
  }
  const index = Number(entry.statusListIndex);
  const revoked = (bits[Math.floor(index / 8)] & (0x80 >> (index % 8))) !== 0;
  return revoked ?
    {verified: false, error: new Error('the credential is revoked')} : {verified: true};
}

let allVerified = true;
for(const file of files) {
  const credential = JSON.parse(await readFile(file, 'utf8'));
  let result;
  try {
    result = await vc.verifyCredential({credential, suite, documentLoader, checkStatus});
  } catch(e) {
    result = {verified: false, error: e};
  }
  const error = result.verified ? undefined : describe(result);
  if(!result.verified) {
    allVerified = false;
  }
  console.log(JSON.stringify({file, verified: result.verified, error}));
}
process.exit(allVerified ? 0 : 1);

function describe(result) {
  const errors = [];
  if(result.error) {
    errors.push(...flatten(result.error));
  }
  for(const r of result.results || []) {
    if(r.error) {
      errors.push(...flatten(r.error));
    }
  }
  if(result.statusResult && result.statusResult.error) {
    errors.push(...flatten(result.statusResult.error));
  }
  return errors.join('; ') || 'not verified';
}

function flatten(error) {
  if(error.errors) {
    return error.errors.flatMap(flatten);
  }
  return [error.message || String(error)];
}
