//! ACME profiles (draft-aaron-acme-profiles): which profile an order asks
//! for, given what the configuration wants and what the CA's directory
//! offers in `meta.profiles`.
//!
//! A wanted profile is either preferred (the CA's default is used, with a
//! warning, when the CA does not offer it) or required (the order is not
//! made, and the error lists what the CA offers).

use serde::{Deserialize, Serialize};

/// How strongly a configured profile is wanted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileMode {
    /// Use the profile when the CA offers it, else the CA's default.
    #[default]
    Preferred,
    /// Order only with this profile.
    Required,
}

impl std::fmt::Display for ProfileMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProfileMode::Preferred => "preferred",
            ProfileMode::Required => "required",
        })
    }
}

/// A profile the configuration asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedProfile {
    pub name: String,
    pub mode: ProfileMode,
}

/// One profile the CA offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    pub name: String,
    pub description: String,
}

/// The outcome of [`choose`]: the profile to put in the order (None: the
/// CA's default) and a warning to log, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub profile: Option<String>,
    pub warning: Option<String>,
}

/// A required profile the CA does not offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile {wanted:?} is required for {certificate}, but the CA ({directory}) {offers}; set profile to one it offers, or profile_mode = \"preferred\" to accept the CA's default")]
pub struct ProfileUnavailable {
    pub certificate: String,
    pub wanted: String,
    pub directory: String,
    /// "offers no profiles" or "offers only: a, b".
    pub offers: String,
}

/// The profiles in a directory document's `meta.profiles`, sorted by name
/// (a description that is not a string is shown empty).
pub fn from_meta(directory: &serde_json::Value) -> Vec<Offered> {
    let mut v: Vec<Offered> = directory
        .get("meta")
        .and_then(|m| m.get("profiles"))
        .and_then(|p| p.as_object())
        .map(|m| {
            m.iter()
                .map(|(name, d)| Offered {
                    name: name.clone(),
                    description: d.as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Names the offered profiles for a message, sorted.
pub fn describe_offers(offered: &[Offered]) -> String {
    if offered.is_empty() {
        return "offers no profiles".into();
    }
    let mut names: Vec<&str> = offered.iter().map(|o| o.name.as_str()).collect();
    names.sort_unstable();
    format!("offers only: {}", names.join(", "))
}

/// Decides the profile of an order for `certificate`.
pub fn choose(
    certificate: &str,
    wanted: Option<&WantedProfile>,
    offered: &[Offered],
    directory: &str,
) -> Result<Choice, ProfileUnavailable> {
    let Some(w) = wanted else {
        return Ok(Choice {
            profile: None,
            warning: None,
        });
    };
    if offered.iter().any(|o| o.name == w.name) {
        return Ok(Choice {
            profile: Some(w.name.clone()),
            warning: None,
        });
    }
    match w.mode {
        ProfileMode::Required => Err(ProfileUnavailable {
            certificate: certificate.to_string(),
            wanted: w.name.clone(),
            directory: directory.to_string(),
            offers: describe_offers(offered),
        }),
        ProfileMode::Preferred => Ok(Choice {
            profile: None,
            warning: Some(format!(
                "{certificate}: preferred profile {:?} is not offered by the CA ({directory}, which {}); ordering with the CA's default profile",
                w.name,
                describe_offers(offered)
            )),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offers(names: &[&str]) -> Vec<Offered> {
        names
            .iter()
            .map(|n| Offered {
                name: n.to_string(),
                description: format!("{n} profile"),
            })
            .collect()
    }

    fn want(name: &str, mode: ProfileMode) -> WantedProfile {
        WantedProfile {
            name: name.into(),
            mode,
        }
    }

    #[test]
    fn no_wanted_profile_orders_the_default_without_a_warning() {
        let c = choose("a", None, &offers(&["classic"]), "https://ca/dir").unwrap();
        assert_eq!(
            c,
            Choice {
                profile: None,
                warning: None
            }
        );
    }

    #[test]
    fn an_offered_profile_is_ordered_in_either_mode() {
        for mode in [ProfileMode::Preferred, ProfileMode::Required] {
            let w = want("shortlived", mode);
            let c = choose("a", Some(&w), &offers(&["classic", "shortlived"]), "d").unwrap();
            assert_eq!(c.profile.as_deref(), Some("shortlived"));
            assert_eq!(c.warning, None);
        }
    }

    #[test]
    fn a_preferred_profile_not_offered_falls_back_with_a_warning() {
        let w = want("tlsserver", ProfileMode::Preferred);
        let c = choose(
            "web",
            Some(&w),
            &offers(&["shortlived", "classic"]),
            "https://ca/dir",
        )
        .unwrap();
        assert_eq!(c.profile, None);
        assert_eq!(
            c.warning.as_deref(),
            Some("web: preferred profile \"tlsserver\" is not offered by the CA (https://ca/dir, which offers only: classic, shortlived); ordering with the CA's default profile")
        );
        let c = choose("web", Some(&w), &[], "d").unwrap();
        assert!(c.warning.unwrap().contains("which offers no profiles"));
    }

    #[test]
    fn a_required_profile_not_offered_fails_listing_the_offers() {
        let w = want("tlsserver", ProfileMode::Required);
        let e = choose(
            "web",
            Some(&w),
            &offers(&["shortlived", "classic"]),
            "https://ca/dir",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "profile \"tlsserver\" is required for web, but the CA (https://ca/dir) offers only: classic, shortlived; set profile to one it offers, or profile_mode = \"preferred\" to accept the CA's default"
        );
        let e = choose("web", Some(&w), &[], "d").unwrap_err();
        assert!(e.to_string().contains("offers no profiles"), "{e}");
    }

    #[test]
    fn profiles_are_read_from_the_directory_meta() {
        let dir = serde_json::json!({
            "newOrder": "x",
            "meta": {"profiles": {
                "tlsserver": "https://ca/docs#tlsserver",
                "classic": "The same profile you're accustomed to",
            }}
        });
        assert_eq!(
            from_meta(&dir),
            vec![
                Offered {
                    name: "classic".into(),
                    description: "The same profile you're accustomed to".into()
                },
                Offered {
                    name: "tlsserver".into(),
                    description: "https://ca/docs#tlsserver".into()
                },
            ]
        );
        assert!(from_meta(&serde_json::json!({"newOrder": "x"})).is_empty());
        assert!(from_meta(&serde_json::json!({"meta": {"termsOfService": "t"}})).is_empty());
    }

    #[test]
    fn profile_names_match_exactly() {
        let w = want("Classic", ProfileMode::Required);
        assert!(choose("a", Some(&w), &offers(&["classic"]), "d").is_err());
    }
}
