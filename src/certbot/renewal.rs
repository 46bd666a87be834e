//! What a certbot renewal file (`renewal/<name>.conf`) says, and how each
//! setting maps onto a certkeep `[[certificate]]`. Pure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::ini::{Entry, Ini, IniError, Section};
use crate::config::KeyType;

/// The settings of one renewal file that matter for a takeover.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// The lineage name (the file name without `.conf`).
    pub name: String,
    pub file: PathBuf,
    /// certbot version that last wrote the file.
    pub version: Option<String>,
    pub archive_dir: Option<PathBuf>,
    pub fullchain: Option<PathBuf>,
    pub privkey: Option<PathBuf>,
    pub renew_before_expiry: Option<String>,
    pub server: Option<String>,
    pub account: Option<String>,
    pub authenticator: Option<String>,
    pub installer: Option<String>,
    pub webroot_path: Vec<PathBuf>,
    pub webroot_map: BTreeMap<String, PathBuf>,
    pub key_type: Option<String>,
    pub elliptic_curve: Option<String>,
    pub rsa_key_size: Option<u32>,
    pub reuse_key: bool,
    pub pre_hook: Option<String>,
    pub deploy_hook: Option<String>,
    pub post_hook: Option<String>,
    pub preferred_profile: Option<String>,
    pub required_profile: Option<String>,
    pub preferred_chain: Option<String>,
    pub must_staple: bool,
    pub autorenew: bool,
}

/// Reads the settings out of a parsed renewal file.
pub fn interpret(ini: &Ini, name: &str, file: &Path) -> Result<Renewal, IniError> {
    let top = &ini.root;
    let empty = Section::default();
    let params = top.section("renewalparams").unwrap_or(&empty);
    let err = |e: &Entry, message: String| IniError {
        path: file.to_path_buf(),
        line: e.line,
        message,
    };
    let text = |s: &Section, key: &str| -> Option<String> {
        s.get(key)
            .map(|e| e.value.joined().trim().to_string())
            .filter(|v| !v.is_empty() && v != "None")
    };
    let flag = |key: &str, default: bool| -> Result<bool, IniError> {
        match params.get(key) {
            None => Ok(default),
            Some(e) => parse_bool(&e.value.joined()).ok_or_else(|| {
                err(
                    e,
                    format!(
                        "{key} = {:?} is not a boolean (True or False)",
                        e.value.joined()
                    ),
                )
            }),
        }
    };
    let rsa_key_size = match params.get("rsa_key_size") {
        None => None,
        Some(e) => Some(e.value.joined().trim().parse::<u32>().map_err(|_| {
            err(
                e,
                format!(
                    "rsa_key_size = {:?} is not a number of bits",
                    e.value.joined()
                ),
            )
        })?),
    };
    let mut webroot_map = BTreeMap::new();
    if let Some(m) = params.section("webroot_map") {
        for e in &m.entries {
            let v = e.value.joined();
            if v.trim().is_empty() {
                return Err(err(e, format!("webroot_map entry {:?} has no path", e.key)));
            }
            webroot_map.insert(e.key.to_ascii_lowercase(), PathBuf::from(v.trim()));
        }
    }
    let webroot_path = params
        .get("webroot_path")
        .map(|e| {
            e.value
                .items()
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    Ok(Renewal {
        name: name.to_string(),
        file: file.to_path_buf(),
        version: text(top, "version"),
        archive_dir: text(top, "archive_dir").map(PathBuf::from),
        fullchain: text(top, "fullchain").map(PathBuf::from),
        privkey: text(top, "privkey").map(PathBuf::from),
        renew_before_expiry: text(top, "renew_before_expiry"),
        server: text(params, "server"),
        account: text(params, "account"),
        authenticator: text(params, "authenticator"),
        installer: text(params, "installer"),
        webroot_path,
        webroot_map,
        key_type: text(params, "key_type").map(|s| s.to_ascii_lowercase()),
        elliptic_curve: text(params, "elliptic_curve").map(|s| s.to_ascii_lowercase()),
        rsa_key_size,
        reuse_key: flag("reuse_key", false)?,
        pre_hook: text(params, "pre_hook"),
        deploy_hook: text(params, "renew_hook").or_else(|| text(params, "deploy_hook")),
        post_hook: text(params, "post_hook"),
        preferred_profile: text(params, "preferred_profile"),
        required_profile: text(params, "required_profile"),
        preferred_chain: text(params, "preferred_chain"),
        must_staple: flag("must_staple", false)?,
        autorenew: flag("autorenew", true)?,
    })
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Why a lineage cannot be taken over, and what the user can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub reason: String,
    pub todo: String,
}

fn blocker(reason: String, todo: &str) -> Blocker {
    Blocker {
        reason,
        todo: todo.to_string(),
    }
}

const REISSUE_WEBROOT: &str = "switch it to the webroot method first (certbot certonly --webroot -w /var/www/certbot --cert-name <name> -d ...), serve /.well-known/acme-challenge/ from that directory in nginx, then import again; or leave it out with --cert and keep certbot for it";

impl Renewal {
    /// The authenticator name without an old `certbot:` style prefix.
    fn authenticator_name(&self) -> Option<&str> {
        self.authenticator
            .as_deref()
            .map(|a| a.rsplit(':').next().unwrap_or(a))
    }

    /// Checks that certkeep can renew this lineage the way certbot did.
    pub fn check_authenticator(&self) -> Result<(), Blocker> {
        match self.authenticator_name() {
            Some("webroot") => {
                if self.webroot_path.is_empty() && self.webroot_map.is_empty() {
                    return Err(blocker(
                        "authenticator is webroot but neither webroot_path nor [[webroot_map]] is set".into(),
                        REISSUE_WEBROOT,
                    ));
                }
                Ok(())
            }
            Some("standalone") => Err(blocker(
                "authenticator is standalone: certbot ran its own web server on port 80; certkeep only writes challenge files into a webroot that nginx serves".into(),
                REISSUE_WEBROOT,
            )),
            Some("nginx") => Err(blocker(
                "authenticator is the nginx plugin: certbot edited nginx's configuration to answer challenges; certkeep needs a webroot".into(),
                REISSUE_WEBROOT,
            )),
            Some("manual") => Err(blocker(
                "authenticator is manual: challenges were answered by hand or by --manual-auth-hook scripts".into(),
                REISSUE_WEBROOT,
            )),
            Some(a) if a.starts_with("dns") => Err(blocker(
                format!("authenticator is {a}: DNS-01 validation, which certkeep does not do (HTTP-01 only)"),
                "keep certbot for this lineage (leave it out with --cert), or if every name is reachable over HTTP switch it to the webroot method and import again",
            )),
            Some(a) => Err(blocker(
                format!("authenticator {a:?} is not the webroot method"),
                REISSUE_WEBROOT,
            )),
            None => Err(blocker(
                "the file does not say which authenticator obtained the certificate".into(),
                REISSUE_WEBROOT,
            )),
        }
    }

    /// certkeep's key type: from the renewal file, or the current
    /// certificate's key (`cert_key`, e.g. "rsa2048") when the file is silent.
    pub fn key_type(&self, cert_key: &str) -> Result<KeyType, Blocker> {
        let todo = "certkeep makes ecdsa-p256, ecdsa-p384, rsa2048, rsa3072 or rsa4096 keys: re-issue with one of these with certbot (--key-type/--elliptic-curve/--rsa-key-size), or leave it out with --cert";
        let (kind, detail) = match self.key_type.as_deref() {
            Some("ecdsa") => (
                match self.elliptic_curve.as_deref().unwrap_or("secp256r1") {
                    "secp256r1" | "prime256v1" | "p-256" => Some(KeyType::EcdsaP256),
                    "secp384r1" | "p-384" => Some(KeyType::EcdsaP384),
                    _ => None,
                },
                format!(
                    "ecdsa {}",
                    self.elliptic_curve.as_deref().unwrap_or("secp256r1")
                ),
            ),
            Some("rsa") => {
                let bits = self.rsa_key_size.unwrap_or(2048);
                (rsa(bits), format!("rsa {bits}"))
            }
            Some(other) => (None, other.to_string()),
            None => (
                match cert_key {
                    "ecdsa-p256" => Some(KeyType::EcdsaP256),
                    "ecdsa-p384" => Some(KeyType::EcdsaP384),
                    k => k
                        .strip_prefix("rsa")
                        .and_then(|b| b.parse().ok())
                        .and_then(rsa),
                },
                format!("{cert_key} (from the certificate)"),
            ),
        };
        kind.ok_or_else(|| blocker(format!("key type {detail} is not supported"), todo))
    }

    /// `renew_before_expiry` ("30 days") as a certkeep duration ("30d").
    pub fn renew_before(&self) -> Result<Option<String>, Blocker> {
        let Some(s) = &self.renew_before_expiry else {
            return Ok(None);
        };
        convert_interval(s).map(Some).ok_or_else(|| {
            blocker(
                format!("renew_before_expiry = {s:?} is not an interval certkeep understands"),
                "write it as \"<number> days\" (or weeks, hours) in the renewal file, or leave it out, and import again",
            )
        })
    }

    /// The webroot for all names plus per-name exceptions, covering `domains`.
    pub fn webroots(
        &self,
        domains: &[String],
    ) -> Result<(Option<PathBuf>, BTreeMap<String, PathBuf>), Blocker> {
        // certbot gives names missing from the map the last webroot_path.
        let fallback = self.webroot_path.last().cloned();
        let mut default = fallback.clone();
        if default.is_none() {
            // The path most names use becomes the default.
            let mut counts: BTreeMap<&PathBuf, usize> = BTreeMap::new();
            for d in domains {
                if let Some(p) = self.webroot_map.get(d) {
                    *counts.entry(p).or_default() += 1;
                }
            }
            default = counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(p, _)| p.clone());
        }
        let mut map = BTreeMap::new();
        for d in domains {
            match (self.webroot_map.get(d), &default) {
                (Some(p), Some(def)) if p == def => {}
                (Some(p), _) => {
                    map.insert(d.clone(), p.clone());
                }
                (None, _) if fallback.is_some() => {}
                (None, _) => {
                    return Err(blocker(
                        format!("no webroot is recorded for {d}"),
                        "add it to [[webroot_map]] in the renewal file (or renew once with certbot --webroot -w <dir>) and import again",
                    ))
                }
            }
        }
        Ok((default, map))
    }
}

fn rsa(bits: u32) -> Option<KeyType> {
    match bits {
        2048 => Some(KeyType::Rsa2048),
        3072 => Some(KeyType::Rsa3072),
        4096 => Some(KeyType::Rsa4096),
        _ => None,
    }
}

/// "30 days" -> "30d", "2 weeks" -> "14d", "12 hours" -> "12h", "30d" -> "30d".
pub fn convert_interval(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().ok()?;
    let unit = s[split..].trim();
    match unit {
        "d" | "day" | "days" => Some(format!("{n}d")),
        "w" | "week" | "weeks" => Some(format!("{}d", n.checked_mul(7)?)),
        "h" | "hour" | "hours" => Some(format!("{n}h")),
        "m" | "min" | "minute" | "minutes" => Some(format!("{n}m")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
