"""The verifier's harness, shipped into the sandbox: the wire format, the candidate rules and the runner."""
