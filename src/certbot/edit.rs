//! Edits certkeep's TOML configuration in place (toml_edit), keeping the
//! user's comments, order and other entries.

use std::fmt;
use std::path::Path;

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table};

use super::{Entry, ImportError};

pub(super) struct Doc(DocumentMut);

impl Doc {
    pub(super) fn parse(text: &str, path: &Path) -> Result<Doc, ImportError> {
        text.parse::<DocumentMut>()
            .map(Doc)
            .map_err(|e| ImportError::Toml {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })
    }

    /// `[acme] directory` when the file sets it.
    pub(super) fn acme_directory(&self) -> Option<String> {
        self.0
            .get("acme")?
            .get("directory")?
            .as_str()
            .map(str::to_string)
    }

    pub(super) fn has_store(&self) -> bool {
        self.0.get("store").is_some()
    }

    pub(super) fn set_store(&mut self, root: &Path) {
        self.0["store"] = value(root.to_string_lossy().into_owned());
    }

    pub(super) fn set_acme_directory(&mut self, directory: &str) {
        if !self.0.contains_key("acme") {
            self.0.insert("acme", Item::Table(Table::new()));
        }
        self.0["acme"]["directory"] = value(directory);
    }

    /// Sets `[acme] staging_directory` (what `renew --dry-run` orders from),
    /// with a comment saying why when `[acme]` is a table of its own (a
    /// comment cannot go inside an inline table).
    pub(super) fn set_acme_staging_directory(&mut self, directory: &str, why: &str) {
        let own_table = self.0.get("acme").is_some_and(Item::is_table);
        self.0["acme"]["staging_directory"] = value(directory);
        if own_table {
            if let Some(mut key) = self.0["acme"]
                .as_table_mut()
                .and_then(|t| t.key_mut("staging_directory"))
            {
                key.leaf_decor_mut().set_prefix(format!("# {why}\n"));
            }
        }
    }

    /// Adds the `[[certificate]]` for `e`, or replaces the one with its name.
    pub(super) fn put_certificate(&mut self, e: &Entry) {
        let table = certificate_table(e);
        if !self.0.contains_key("certificate") {
            self.0
                .insert("certificate", Item::ArrayOfTables(ArrayOfTables::new()));
        }
        let Some(aot) = self
            .0
            .get_mut("certificate")
            .and_then(Item::as_array_of_tables_mut)
        else {
            // `certificate` is something else; Settings::parse reports it later.
            return;
        };
        let existing = aot
            .iter_mut()
            .find(|t| t.get("name").and_then(Item::as_str) == Some(e.name.as_str()));
        if let Some(existing) = existing {
            let decor = existing.decor().clone();
            *existing = table;
            *existing.decor_mut() = decor;
        } else {
            aot.push(table);
        }
    }
}

impl fmt::Display for Doc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn certificate_table(e: &Entry) -> Table {
    let mut t = Table::new();
    t.decor_mut().set_prefix(format!(
        "\n# Imported from certbot (renewal/{}.conf).\n",
        e.name
    ));
    t["name"] = value(e.name.as_str());
    t["domains"] = value(Array::from_iter(e.domains.iter().map(String::as_str)));
    if let Some(w) = &e.webroot {
        t["webroot"] = value(w.to_string_lossy().into_owned());
    }
    if !e.webroot_map.is_empty() {
        let mut m = InlineTable::new();
        for (d, p) in &e.webroot_map {
            m.insert(d, p.to_string_lossy().into_owned().into());
        }
        t["webroot_map"] = value(m);
    }
    t["key_type"] = value(e.key_type.as_str());
    if e.reuse_key {
        t["reuse_key"] = value(true);
    }
    if let Some(p) = &e.profile {
        t["profile"] = value(p.name.as_str());
        if p.mode != crate::acme::profile::ProfileMode::Preferred {
            t["profile_mode"] = value(p.mode.to_string());
        }
    }
    if let Some(r) = &e.renew_before {
        t["renew_before"] = value(r.as_str());
    }
    for (key, hook) in [
        ("pre_hook", &e.pre_hook),
        ("deploy_hook", &e.deploy_hook),
        ("post_hook", &e.post_hook),
    ] {
        if let Some(h) = hook {
            // certbot ran hooks through a shell.
            t[key] = value(Array::from_iter(["/bin/sh", "-c", h.as_str()]));
        }
    }
    t
}
