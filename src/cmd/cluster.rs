//! `certkeep cluster init` and `certkeep cluster status`.

use time::OffsetDateTime;

use super::{report, EXIT_FAILURE, EXIT_OK, EXIT_USAGE};
use crate::cli::ClusterCommand;
use crate::cluster::config::ClusterConfig;
use crate::cluster::etcd::{Etcd, Settings as EtcdSettings};
use crate::cluster::keys::Keys;
use crate::cluster::seal::SealKey;
use crate::cluster::status;
use crate::config::Settings;
use crate::store::Store;

pub(super) async fn run(config: &Settings, command: &ClusterCommand) -> u8 {
    let Some(cc) = &config.cluster else {
        eprintln!("error: the configuration has no [cluster] section; add one (see docs/cluster.md) to use cluster mode");
        return EXIT_USAGE;
    };
    let node = match cc.node_name() {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let keys = Keys::new(&cc.prefix.0);
    match command {
        ClusterCommand::Init { force } => init(config, cc, &keys, &node, *force).await,
        ClusterCommand::Status { json } => show(cc, &keys, *json).await,
    }
}

async fn connect(cc: &ClusterConfig) -> Result<Etcd, u8> {
    Etcd::connect(&EtcdSettings::from_config(cc))
        .await
        .map_err(|e| {
            report("cannot reach etcd", &e);
            EXIT_FAILURE
        })
}

async fn init(config: &Settings, cc: &ClusterConfig, keys: &Keys, node: &str, force: bool) -> u8 {
    let key = match SealKey::load(&cc.encryption_key_file) {
        Ok(k) => k,
        Err(e) => {
            report("cannot use the cluster encryption key", &e);
            return EXIT_USAGE;
        }
    };
    let etcd = match connect(cc).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let store = Store::new(&config.store);
    match status::init(
        &etcd,
        keys,
        &status::InitSource {
            store: &store,
            directory: config.acme.directory.as_str(),
            key: &key,
            node,
        },
        force,
        OffsetDateTime::now_utc(),
    )
    .await
    {
        Ok(r) => {
            if r.replaced > 0 {
                println!("removed {} keys under {}", r.replaced, r.root);
            }
            for (name, serial) in &r.lineages {
                println!("uploaded lineage {name} (serial {serial}) as version 1");
            }
            match &r.account {
                Some(h) => println!("uploaded the ACME account for {h}"),
                None => println!(
                    "no ACME account in the store for {}: the first node that orders will register one",
                    config.acme.directory
                ),
            }
            println!(
                "cluster {} initialised with {} lineage{} (key {})",
                r.root,
                r.lineages.len(),
                if r.lineages.len() == 1 { "" } else { "s" },
                r.key_id
            );
            EXIT_OK
        }
        Err(e) => {
            report("cluster init", &e);
            EXIT_FAILURE
        }
    }
}

async fn show(cc: &ClusterConfig, keys: &Keys, json: bool) -> u8 {
    // The key only serves to tell whether this node has the cluster's key.
    let key = SealKey::load(&cc.encryption_key_file).ok();
    let etcd = match connect(cc).await {
        Ok(e) => e,
        Err(code) => return code,
    };
    let lag =
        time::Duration::try_from(cc.deploy_lag_alert_after.get()).unwrap_or(time::Duration::MAX);
    match status::status(&etcd, keys, key.as_ref(), lag, OffsetDateTime::now_utc()).await {
        Ok(s) => {
            if json {
                match serde_json::to_string_pretty(&s) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("error: cannot print the status as JSON: {e}");
                        return EXIT_FAILURE;
                    }
                }
            } else {
                print!("{}", s.render());
            }
            if s.problems.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAILURE
            }
        }
        Err(e) => {
            report("cluster status", &e);
            EXIT_FAILURE
        }
    }
}
