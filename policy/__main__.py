"""cloudservice-production: the policy pack `make up STACK=prod` enforces (every rule mandatory).

Run by the Pulumi CLI: `pulumi preview --policy-pack policy` (or `up`) from the project directory.
The rules themselves are pure functions in rules.py; this file only wraps each one as a
ResourceValidationPolicy and serves the pack (PolicyPack prints its port and blocks).
"""

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from rules import RULES, Rule, runs_nothing

PACK_NAME = "cloudservice-production"
ENFORCEMENT = EnforcementLevel.MANDATORY


def _validator(rule: Rule):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if runs_nothing(args.resource_type, args.props):
            return
        for message in rule.check(args.resource_type, args.props):
            report_violation(message, None)

    validate.__name__ = rule.name.replace("-", "_")
    return validate


POLICIES = [
    ResourceValidationPolicy(name=rule.name, description=rule.description, validate=_validator(rule)) for rule in RULES
]


if __name__ == "__main__":
    PolicyPack(name=PACK_NAME, enforcement_level=ENFORCEMENT, policies=POLICIES)
