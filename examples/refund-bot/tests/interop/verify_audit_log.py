"""Verifies a Warden audit log from outside Rust: the chain, the signed checkpoints, the signed
approvals and the witness, from the JWK set alone.

Nothing here shares code with Warden. The canonical form comes from `rfc8785` (Trail of Bits'
implementation of RFC 8785) and the Ed25519 check from PyJWT's `cryptography` backend, both from
PyPI, so a digest or a signature that verifies here was computed the way the RFCs say, not the
way Warden happens to.

    python verify_audit_log.py LOG JWKS WITNESS [--numbers FILE]

`--numbers FILE` also checks lines of `{"bits": "<16 hex digits>", "canonical": "..."}` (from
`cargo run -p agent-core --example canonical_numbers`): the canonical spelling of each double.

Prints a summary and exits 0 when the log is intact and sealed and reaches its witness,
1 otherwise (naming the first problem).
"""

import base64
import hashlib
import json
import struct
import sys

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_EXACT = 2**53


def b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def doubles_beyond_exact(value):
    """RFC 8785 writes every number as a double; `rfc8785` refuses integers a double cannot hold,
    so such integers (never in tool arguments: the runtime refuses them) become that double."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value) if abs(value) > MAX_EXACT - 1 else value
    if isinstance(value, list):
        return [doubles_beyond_exact(item) for item in value]
    if isinstance(value, dict):
        return {key: doubles_beyond_exact(item) for key, item in value.items()}
    return value


def digest(value):
    return hashlib.sha256(rfc8785.dumps(doubles_beyond_exact(value))).hexdigest()


class Keys:
    def __init__(self, path):
        with open(path, encoding="utf-8") as handle:
            jwks = json.load(handle)
        self.keys = {}
        for key in jwks["keys"]:
            assert key["kty"] == "OKP" and key["crv"] == "Ed25519", key
            self.keys[key["kid"]] = Ed25519PublicKey.from_public_bytes(b64url(key["x"]))

    def document(self, signature, kind):
        """The document a flattened JWS of `kind` signs, if its signature verifies."""
        header = json.loads(b64url(signature["protected"]))
        assert header["alg"] == "EdDSA", header
        key = self.keys[header["kid"]]
        signed = f"{signature['protected']}.{signature['payload']}".encode()
        key.verify(b64url(signature["signature"]), signed)  # raises InvalidSignature
        payload = json.loads(b64url(signature["payload"]))
        assert payload["kind"] == kind, payload
        return payload["document"], header["kid"]


def fail(line, message):
    print(f"python verifier: line {line}: {message}")
    sys.exit(1)


def verify(log_path, jwks_path, witness_path):
    keys = Keys(jwks_path)
    with open(witness_path, encoding="utf-8") as handle:
        witness = json.load(handle)
    witnessed, _ = keys.document(witness["signature"], "checkpoint")
    assert witnessed == witness["head"], "the witness's head is not the head signed"

    previous = "0" * 64
    log_id = None
    checkpoints = approvals = 0
    sealed = False
    hash_at_witness = None
    with open(log_path, "rb") as handle:
        raw_lines = handle.read().split(b"\n")
    if raw_lines[-1] != b"":
        fail(len(raw_lines), "the last line is torn")
    for number, raw in enumerate(raw_lines[:-1], start=1):
        event = json.loads(raw)
        if event["seq"] != number - 1:
            fail(number, f"sequence {event['seq']}")
        if event["prev_hash"] != previous:
            fail(number, "broken link")
        body = {key: value for key, value in event.items() if key != "hash"}
        if digest(body) != event["hash"]:
            fail(number, "the hash is not the SHA-256 of the RFC 8785 form")
        if number == 1:
            if event["stage"] != "log" or event["detail"]["format"] != 2:
                fail(number, "no format-2 header")
            log_id = event["detail"]["log_id"]
        sealed = False
        if event["stage"] == "checkpoint":
            head, kid = keys.document(event["detail"]["signature"], "checkpoint")
            if head != event["detail"]["head"] or kid != event["detail"]["key_id"]:
                fail(number, "the head on the line is not the head signed")
            if head["log_id"] != log_id or head["size"] != event["seq"]:
                fail(number, "the signed head is not this log's at this place")
            if head["head_hash"] != previous:
                fail(number, "the signed head's hash is not the chain's")
            sealed = head["sealed"]
            checkpoints += 1
        if event["stage"] == "approval" and event.get("detail", {}).get("signature"):
            record, _ = keys.document(event["detail"]["signature"], "approval")
            if record != event["detail"]["record"]:
                fail(number, "the approval on the line is not the one signed")
            bound = {
                "request_id": f"{event['task']}/{event['call_id']}",
                "tool": event["tool"],
                "task": event["task"],
                "args_digest": event["args_digest"],
            }
            for field, value in bound.items():
                if record[field] != value:
                    fail(number, f"the signed approval's {field} is not the call's")
            if event["verdict"] == "allow" and record["decision"] != "approved":
                fail(number, "an allow without an approved record")
            approvals += 1
        if event["seq"] + 1 == witnessed["size"]:
            hash_at_witness = event["hash"]
        previous = event["hash"]
    events = len(raw_lines) - 1
    if witnessed["log_id"] != log_id:
        fail(0, "the witness is of another log")
    if events < witnessed["size"] or hash_at_witness != witnessed["head_hash"]:
        fail(0, "the log does not reach its witness")
    if not sealed:
        fail(events, "the log does not end in a seal")
    print(
        f"python verifier: {log_path}: {events} events, {checkpoints} checkpoints and "
        f"{approvals} approvals verified with rfc8785 {rfc8785.__version__}: intact and sealed"
    )


def verify_numbers(path):
    checked = 0
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            case = json.loads(line)
            value = struct.unpack(">d", bytes.fromhex(case["bits"]))[0]
            expected = rfc8785.dumps(value).decode()
            if expected != case["canonical"]:
                fail(0, f"the double {case['bits']} is {expected} by RFC 8785, not {case['canonical']}")
            checked += 1
    print(f"python verifier: {checked} doubles spelt as rfc8785 spells them")


def main(argv):
    if "--numbers" in argv:
        at = argv.index("--numbers")
        verify_numbers(argv[at + 1])
        argv = argv[:at] + argv[at + 2 :]
    if len(argv) != 4:
        print(__doc__)
        sys.exit(2)
    verify(argv[1], argv[2], argv[3])


if __name__ == "__main__":
    main(sys.argv)
