"""Serve the aichat policy pack to the Pulumi CLI (`pulumi preview --policy-pack policy`).

Only this file constructs the PolicyPack: the constructor starts a gRPC server and never returns,
so the rules themselves live in rules/ where tests and `python -m tools.plan` can import them.
"""

import sys
from pathlib import Path

# The CLI runs this file from policy/; make the rules package importable as `rules`.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pulumi_policy import EnforcementLevel, PolicyPack
from rules import POLICIES

PolicyPack(
    name="aichat-baseline",
    enforcement_level=EnforcementLevel.ADVISORY,  # each rule sets its own level; this is only the fallback
    policies=POLICIES,
)
