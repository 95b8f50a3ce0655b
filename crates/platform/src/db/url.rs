//! libpq's multi-host connection URL, which sqlx does not read: sqlx 0.9 parses one host and
//! ignores `target_session_attrs` with a warning. `DATABASE_URL` may list every node of a
//! replicated cluster, `postgres://user@h1:p1,h2:p2/db?target_session_attrs=read-write`, as psql
//! and every libpq client accept it; [`DbUrl`] turns it into one sqlx option set per host.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// The query parameter naming which server of the list a session wants.
const SESSION_ATTRS: &str = "target_session_attrs";

/// A parsed `postgres://` URL: its hosts in order, and whether only a writable one will do.
#[derive(Debug, Clone)]
pub struct DbUrl {
    hosts: Vec<PgConnectOptions>,
    read_write: bool,
}

impl DbUrl {
    /// Parses a single-host or multi-host URL. `target_session_attrs` may be `any` (the default:
    /// the first host that answers) or `read-write` / `primary` (the first that accepts
    /// writes); the standby-preferring values of libpq are refused, nothing here reads from a
    /// standby.
    pub fn parse(url: &str) -> Result<DbUrl, sqlx::Error> {
        let config = |reason: String| sqlx::Error::Configuration(reason.into());
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| config("database URL without a scheme".into()))?;
        let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = main.split_once('/').unwrap_or((main, ""));
        let (userinfo, host_list) = match authority.rsplit_once('@') {
            Some((user, hosts)) => (format!("{user}@"), hosts),
            None => (String::new(), authority),
        };
        let mut read_write = false;
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some((SESSION_ATTRS, value)) => {
                    read_write = match value {
                        "any" => false,
                        "read-write" | "primary" => true,
                        other => {
                            return Err(config(format!(
                                "{SESSION_ATTRS}={other} is not supported (any, read-write, primary)"
                            )));
                        }
                    }
                }
                _ => kept.push(pair),
            }
        }
        let query = if kept.is_empty() {
            String::new()
        } else {
            format!("?{}", kept.join("&"))
        };
        // A socket URL (`postgres:///db?host=/run/...`) has no host list: one target.
        let hosts: Vec<&str> = if host_list.is_empty() {
            vec![""]
        } else {
            host_list.split(',').collect()
        };
        if hosts.iter().any(|h| h.is_empty()) && hosts.len() > 1 {
            return Err(config("empty host in the database URL's host list".into()));
        }
        let hosts = hosts
            .into_iter()
            .map(|host| {
                PgConnectOptions::from_str(&format!("{scheme}://{userinfo}{host}/{path}{query}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DbUrl { hosts, read_write })
    }

    /// One option set per host, in the URL's order (the order servers are tried in).
    pub fn hosts(&self) -> &[PgConnectOptions] {
        &self.hosts
    }

    /// Whether only a server that accepts writes will do.
    pub fn read_write(&self) -> bool {
        self.read_write
    }

    /// Whether a plain single-server pool serves this URL: one host, any session.
    pub fn is_plain(&self) -> bool {
        self.hosts.len() == 1 && !self.read_write
    }
}

/// `host:port` of `options`, for log lines (never the credentials).
pub fn label(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// `url` with its database name replaced by `db`, host list and query kept (a multi-host URL is
/// not a valid `url::Url`, so this works on the text).
pub fn with_database(url: &str, db: &str) -> Result<String, sqlx::Error> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| sqlx::Error::Configuration("database URL without a scheme".into()))?;
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = main.split_once('/').map_or(main, |(a, _)| a);
    Ok(format!("{scheme}://{authority}/{db}{query}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_becomes_one_target_per_host_in_order() {
        let url = DbUrl::parse(
            "postgres://app:s3cret@127.0.0.1:5432,127.0.0.1:5442/orders?target_session_attrs=read-write&sslmode=disable",
        )
        .unwrap();
        assert!(url.read_write());
        assert!(!url.is_plain());
        let hosts: Vec<String> = url.hosts().iter().map(label).collect();
        assert_eq!(hosts, ["127.0.0.1:5432", "127.0.0.1:5442"]);
        for host in url.hosts() {
            assert_eq!(host.get_database(), Some("orders"));
            assert_eq!(host.get_username(), "app");
        }
    }

    #[test]
    fn a_single_host_url_is_plain_unless_it_asks_for_a_writable_server() {
        let plain = DbUrl::parse("postgres://postgres@127.0.0.1:5432/orders").unwrap();
        assert!(plain.is_plain());
        let any = DbUrl::parse("postgres://h:1/db?target_session_attrs=any").unwrap();
        assert!(any.is_plain());
        let rw = DbUrl::parse("postgres://h:1/db?target_session_attrs=primary").unwrap();
        assert!(!rw.is_plain() && rw.read_write());
    }

    #[test]
    fn standby_session_attributes_and_empty_hosts_are_refused() {
        for bad in [
            "postgres://h:1,h:2/db?target_session_attrs=standby",
            "postgres://h:1/db?target_session_attrs=prefer-standby",
            "postgres://h:1,,h:2/db",
            "no-scheme",
        ] {
            assert!(
                matches!(DbUrl::parse(bad), Err(sqlx::Error::Configuration(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn with_database_keeps_the_host_list_and_the_query() {
        assert_eq!(
            with_database(
                "postgres://u@a:1,b:2/postgres?target_session_attrs=read-write",
                "run_7"
            )
            .unwrap(),
            "postgres://u@a:1,b:2/run_7?target_session_attrs=read-write"
        );
        assert_eq!(
            with_database("postgres://u@a:1", "x").unwrap(),
            "postgres://u@a:1/x"
        );
    }
}
