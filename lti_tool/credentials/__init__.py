"""Open Badges: issuer keys and profiles, achievements, signed Open Badges 3.0 credentials,
hosted Open Badges 2.0 assertions, baked images, revocation through a Bitstring Status List."""
