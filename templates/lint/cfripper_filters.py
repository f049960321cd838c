# cfripper's suppressions for the kms-eth account template, one Filter per finding, each with
# why it is accepted. The template with the signing function (templates/function.yaml, in both
# of its modes) needs none: its role's actions and resources are exact. `cargo xtask test` passes this folder as --rules-filters-folder; every
# finding not listed here fails the run.
from cfripper.config.filter import Filter
from cfripper.model.enums import RuleMode

FILTERS = [
    # The key policy's AccountAdministersTheKey statement allows kms:* to the account root.
    # That is AWS's default key policy: it delegates the key's administration to IAM, and real
    # KMS refuses a key policy that would lock the account out of its own key. Signing is not
    # part of it any more: NobodyElseSigns denies kms:Sign to every principal except the
    # signer role, and an explicit deny wins over this allow. The provisioner's template tests
    # check that kms:* appears in that one statement only.
    Filter(
        reason="the account administers its key; kms:Sign is denied to all but the signer role",
        rule_mode=RuleMode.ALLOWED,
        eval={"eq": [{"ref": "logical_id"}, "Key"]},
        rules={"GenericResourceWildcardPolicyRule"},
    ),
]
