//! The clap value parsers of the flags: the service core's checked parsers made clap's
//! (`checked`), and the deploy and serve values (removal policy, signer principal, tag,
//! Lambda architecture).

use kms_eth_provisioner::{FunctionArch, RemovalPolicy};

/// A clap value parser from one of the service core's checked parsers. Its error is the
/// core's own message (`invalid --nonce: "-1" is negative`), shown as clap shows its own
/// errors, with exit code 2.
pub(super) fn checked<T>(parse: fn(&str, &str) -> anyhow::Result<T>) -> Checked<T> {
    Checked(parse)
}

/// See [`checked`].
#[derive(Clone)]
pub(super) struct Checked<T>(fn(&str, &str) -> anyhow::Result<T>);

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for Checked<T> {
    type Value = T;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        use clap::error::ErrorKind;
        let flag = arg
            .and_then(clap::Arg::get_long)
            .map_or_else(|| "value".to_owned(), |long| format!("--{long}"));
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(
                ErrorKind::InvalidUtf8,
                format!("invalid {flag}: not UTF-8\n"),
            )
        })?;
        (self.0)(&flag, text)
            .map_err(|err| clap::Error::raw(ErrorKind::ValueValidation, format!("{err:#}\n")))
    }
}

pub(super) fn parse_removal_policy(value: &str) -> Result<RemovalPolicy, String> {
    value
        .parse()
        .map_err(|e: kms_eth_provisioner::SpecError| e.to_string())
}

/// The tag keys kms-eth itself writes and reads (the account tag that marks its keys, the
/// tests' run tag); a user's `--tag` may not set them.
pub const RESERVED_TAG_PREFIX: &str = "kms-eth:";

pub(super) fn parse_signer_principal(value: &str) -> Result<String, String> {
    kms_eth_provisioner::validate_signer_principal(value)
        .map(|()| value.to_owned())
        .map_err(|e| e.to_string())
}

pub(super) fn parse_tag(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        // A key forged with kms-eth's own tags would be taken for what those tags say (a
        // test leftover that `test --cleanup` removes, another stack's account).
        Some((key, _)) if key.starts_with(RESERVED_TAG_PREFIX) => Err(format!(
            "the tag key {key:?} starts with {RESERVED_TAG_PREFIX:?}, which is reserved for the \
             tags kms-eth sets itself; choose another key"
        )),
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

pub(super) fn parse_lambda_arch(text: &str) -> Result<FunctionArch, String> {
    text.parse()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn tags_with_the_reserved_prefix_are_refused() {
        for tag in [
            "kms-eth:test-run=x",
            "kms-eth:account=treasury",
            "kms-eth:=x",
        ] {
            let err = parse_tag(tag).unwrap_err();
            assert!(err.contains("reserved"), "{tag}: {err}");
        }
        assert_eq!(
            parse_tag("kms-eth-team=payments").unwrap(),
            ("kms-eth-team".to_owned(), "payments".to_owned())
        );
        assert_eq!(
            parse_tag("Kms-Eth:x=1").unwrap().0,
            "Kms-Eth:x",
            "tag keys are case-sensitive, as in AWS"
        );
        assert!(parse_tag("=x").is_err());
    }
}
