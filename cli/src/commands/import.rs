//! `kms-eth key import`: an existing private key (a keystore, or text on standard input)
//! brought into a new KMS key with origin EXTERNAL, keeping its address. Every check that
//! can be made locally (the password, the curve, the address promised) is made before
//! anything is created; a key made for an import that then fails is retired.

use std::fmt;
use std::io::Read;

use anyhow::{Context, Result};
use kms_eth_core::UsageError;
use kms_eth_provisioner::{
    alias_target, create_alias, create_external_key, from_keystore, from_text, import_material,
    retire, ImportMaterial, NewImportedKey,
};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::flags::ImportArgs;
use crate::msg;
use crate::output::Report;
use crate::session::Session;

/// The imported key.
#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub key_id: String,
    pub key_arn: String,
    pub alias: String,
    pub address: String,
    /// Always `EXTERNAL`: the key's material came from outside KMS.
    pub key_origin: &'static str,
    /// When the material expires (RFC 3339), or null when it does not.
    pub valid_to: Option<String>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key id          {}", self.key_id)?;
        writeln!(f, "alias           {}", self.alias)?;
        writeln!(f, "origin          {} (imported)", self.key_origin)?;
        writeln!(
            f,
            "material        {}",
            self.valid_to
                .as_deref()
                .map_or("does not expire".to_owned(), |t| format!("expires {t}"))
        )?;
        write!(f, "address         {}", self.address)
    }
}

impl Report for ImportReport {}

impl ImportArgs {
    /// The alias's name (the account's name) and the expiry, checked before any call.
    pub fn check(&self) -> Result<(String, Option<i64>)> {
        let name = self
            .alias
            .strip_prefix("alias/")
            .filter(|n| {
                !n.is_empty()
                    && !n.starts_with("aws/")
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/_-".contains(&b))
            })
            .ok_or_else(|| {
                UsageError(format!(
                    "invalid --alias {}: an alias is alias/NAME, NAME of letters, digits, /, _ \
                     and - (not alias/aws/...)",
                    self.alias
                ))
            })?;
        let valid_to = match &self.valid_to {
            None => None,
            Some(text) => {
                let time = aws_smithy_types::DateTime::from_str(
                    text,
                    aws_smithy_types::date_time::Format::DateTime,
                )
                .map_err(|err| {
                    UsageError(format!(
                        "invalid --valid-to {text}: {err}; give an RFC 3339 time such as \
                         2027-01-31T00:00:00Z"
                    ))
                })?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64);
                if time.secs() <= now {
                    return Err(UsageError(format!(
                        "invalid --valid-to {text}: it is in the past; the material would expire \
                         at once"
                    ))
                    .into());
                }
                Some(time.secs())
            }
        };
        Ok((name.to_owned(), valid_to))
    }

    pub async fn run(self, session: &Session) -> Result<ImportReport> {
        let (name, valid_to) = self.check()?;
        // The key is read and checked first: a wrong password, a key of another curve or
        // another address is refused before anything exists in KMS.
        let material = self.material().await?;
        material.check_address(self.expect_address).map_err(usage)?;
        let kms = &session.kms;
        if let Some(key_id) = alias_target(kms, &self.alias).await? {
            return Err(UsageError(format!(
                "alias {} already points at key {key_id}; choose another --alias (nothing was \
                 created)",
                self.alias
            ))
            .into());
        }
        let (key_id, _) = create_external_key(
            kms,
            &NewImportedKey {
                account: name,
                description: self.description.clone(),
                tags: self.tags.clone(),
            },
        )
        .await?;
        msg::note(format!(
            "created key {key_id} (origin EXTERNAL) for {}",
            material.address()
        ));
        let imported = match import_material(kms, &key_id, &material, valid_to).await {
            Ok(imported) => imported,
            Err(err @ kms_eth_provisioner::ProvisionError::ImportedAddressMismatch { .. }) => {
                return Err(err.into())
            }
            Err(err) => {
                // It holds no material: nothing signs with it, and it should not linger.
                retire(kms, &key_id, false).await;
                return Err(anyhow::Error::new(err).context(format!(
                    "importing into key {key_id} failed; that key was scheduled for deletion"
                )));
            }
        };
        drop(material);
        if let Err(err) = create_alias(kms, &self.alias, &imported.key_id).await {
            msg::warn(format!(
                "key {} holds the account {} but has no alias: create it with `aws kms \
                 create-alias --alias-name {} --target-key-id {}`",
                imported.key_id, imported.address, self.alias, imported.key_id
            ));
            return Err(err.into());
        }
        Ok(ImportReport {
            key_id: imported.key_id,
            key_arn: imported.arn,
            alias: self.alias,
            address: imported.address.to_string(),
            key_origin: "EXTERNAL",
            valid_to: imported.valid_to,
        })
    }

    /// The key from the keystore (with its password) or from standard input.
    async fn material(&self) -> Result<ImportMaterial> {
        let Some(path) = &self.keystore else {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the private key from standard input")?;
            return Ok(from_text(&text).map_err(usage)?);
        };
        let json = std::fs::read_to_string(path)
            .map_err(|err| UsageError(format!("invalid --keystore {}: {err}", path.display())))?;
        let password = match &self.password_file {
            Some(file) => {
                let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|err| {
                    UsageError(format!("invalid --password-file {}: {err}", file.display()))
                })?);
                Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
            }
            None => {
                let shown = path.display().to_string();
                tokio::task::spawn_blocking(move || {
                    rpassword::prompt_password(format!("Password for keystore {shown}: "))
                        .map(Zeroizing::new)
                        .map_err(|err| {
                            UsageError(format!(
                                "cannot ask for the keystore's password ({err}): give \
                                 --password-file FILE"
                            ))
                        })
                })
                .await??
            }
        };
        Ok(from_keystore(&json, password.as_bytes()).map_err(usage)?)
    }
}

/// A refused key is the input's fault (exit 2), and nothing was created.
fn usage(err: kms_eth_provisioner::MaterialError) -> UsageError {
    UsageError(format!("{err}; nothing was created"))
}
