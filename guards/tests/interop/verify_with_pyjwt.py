"""Verifies a Warden token with PyJWT, an implementation no one here wrote.

Reads the JSON printed by `cargo run -p guards --example mint_token -- DIR` on stdin. Checks that
the genuine token verifies against the published JWK set (signature, issuer, audience, expiry) and
that the tampered one is refused. Prints `interop: 2 passed, 0 failed` or exits non-zero.
"""

import json
import sys

import jwt

minted = json.load(sys.stdin)
with open(minted["jwks"], encoding="utf-8") as handle:
    jwks = jwt.PyJWKSet.from_dict(json.load(handle))


def decode(token):
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(
        token,
        key=key,
        algorithms=["EdDSA"],
        audience=minted["audience"],
        issuer=minted["issuer"],
        options={"require": ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]},
    )


claims = decode(minted["token"])
assert claims["scope"] == "orders:read refunds:write", claims
assert claims["task"] == "T-interop", claims
print(f"interop: PyJWT {jwt.__version__} verified token jti={claims['jti']}")

try:
    decode(minted["tampered"])
except jwt.InvalidSignatureError:
    print("interop: PyJWT refused the tampered token")
else:
    sys.exit("interop: PyJWT accepted a tampered token")

print("interop: 2 passed, 0 failed")
