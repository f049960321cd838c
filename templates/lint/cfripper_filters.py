# cfripper's suppressions for the kms-eth account template, one Filter per finding and per
# template variant, each with why it is accepted; each filter matches only the variant whose
# key policy makes its reason true (checked statement by statement, by position and Sid), so a
# change to the key policy brings the finding back. `cargo xtask test` passes this folder as
# --rules-filters-folder; every finding not listed here fails the run.
from cfripper.config.filter import Filter
from cfripper.model.enums import RuleMode

STATEMENTS = "resource.Properties.KeyPolicy.Statement"


def sid(index, name):
    return {"eq": [{"ref": f"{STATEMENTS}.{index}.Sid"}, name]}


def effect(index, value):
    return {"eq": [{"ref": f"{STATEMENTS}.{index}.Effect"}, value]}


FILTERS = [
    # Both filters: the key policy's AccountAdministersTheKey statement allows kms:* to the
    # account root. That is AWS's default key policy: it delegates the key's administration to
    # IAM, and real KMS refuses a key policy that would lock the account out of its own key.
    # Signing is not part of it any more: NobodyElseSigns denies kms:Sign to every principal
    # except the roles it names, and an explicit deny wins over this allow. The provisioner's
    # template tests check that kms:* appears in that one statement only.
    #
    # The account alone: four statements, the last the deny with the signer role its only
    # exception.
    Filter(
        reason="the account administers its key; kms:Sign is denied to all but the signer role",
        rule_mode=RuleMode.ALLOWED,
        eval={
            "and": [
                {"eq": [{"ref": "logical_id"}, "Key"]},
                sid(0, "AccountAdministersTheKey"),
                sid(3, "NobodyElseSigns"),
                effect(3, "Deny"),
                {"not": {"exists": {"ref": f"{STATEMENTS}.4"}}},
            ]
        },
        rules={"GenericResourceWildcardPolicyRule"},
    ),
    # With the signing function: its role is the deny's second exception, and a deny of its
    # own (FunctionRoleSignsOnlyInItsFunction) refuses kms:Sign to that role unless
    # lambda:SourceFunctionArn is the function's ARN, so the role signs only from inside the
    # function; seven statements, the deny last.
    Filter(
        reason="the account administers its key; kms:Sign is denied to all but the signer role "
        "and the function's role, which signs only from inside its function",
        rule_mode=RuleMode.ALLOWED,
        eval={
            "and": [
                {"eq": [{"ref": "logical_id"}, "Key"]},
                sid(0, "AccountAdministersTheKey"),
                sid(5, "FunctionRoleSignsOnlyInItsFunction"),
                effect(5, "Deny"),
                sid(6, "NobodyElseSigns"),
                effect(6, "Deny"),
                {"not": {"exists": {"ref": f"{STATEMENTS}.7"}}},
            ]
        },
        rules={"GenericResourceWildcardPolicyRule"},
    ),
]
