// Independent verifier of the tool's Open Badges 3.0 credentials, for the test suite.
//
// Verifies with @digitalbazaar/vc and the eddsa-rdfc-2022 cryptosuite, offline: the JSON-LD
// contexts come from the tool's bundled copies (lti_tool/credentials/contexts/, mapped by
// contexts/index.json there) and did:key is resolved locally; any other URL is refused.
//
// Usage: node verify.mjs FILE.json [FILE.json ...]   (prints one JSON line per file:
//   {"file": ..., "verified": true|false, "error": "..."}; exits 0 when all verified, 1 if not)
import {readFile} from 'node:fs/promises';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

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

let allVerified = true;
for(const file of process.argv.slice(2)) {
  const credential = JSON.parse(await readFile(file, 'utf8'));
  let result;
  try {
    result = await vc.verifyCredential({credential, suite, documentLoader});
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
  return errors.join('; ') || 'not verified';
}

function flatten(error) {
  if(error.errors) {
    return error.errors.flatMap(flatten);
  }
  return [error.message || String(error)];
}
