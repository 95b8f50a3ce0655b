//! `devauth`: the dev stack's identity provider on the command line.
//!
//! - `devauth keys DIR [--rotate]` — make sure DIR holds a signing key, its `kid` and the JWKS
//!   (rotate: a new signing key, the previous one kept in the JWKS); prints the `kid`.
//! - `devauth token SUB [--scope S]... [--ttl-s N]` — prints a token for SUB signed with the key
//!   the environment names (`.stack/env` of a stack started with `AUTH=jwt`).
//! - `devauth serve --port P --dir DIR [--host H]` — the HTTP side (`POST /auth/token`,
//!   `GET /auth/jwks.json`, `GET /health`) until SIGTERM; issuer and audience from
//!   `AUTH_ISSUER` / `AUTH_AUDIENCE` (dev defaults), JSON logs on stdout.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use devauth::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_TTL_S, ENV_AUDIENCE, ENV_ISSUER, Signer};

/// The dev identity provider: signing keys, a JWKS and tokens for the local stack and tests.
#[derive(Debug, Parser)]
#[command(name = "devauth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write DIR/signing-key.pem (0600), DIR/kid and DIR/jwks.json if missing; print the kid.
    Keys {
        /// The key directory (created if missing).
        dir: PathBuf,
        /// Make a new signing key; the JWKS keeps the previous public key, so its tokens still
        /// verify.
        #[arg(long)]
        rotate: bool,
    },
    /// Print a token for SUB (a user's UUID, or an operator's name), signed with the key of
    /// AUTH_SIGNING_KEY / AUTH_SIGNING_KID for AUTH_ISSUER / AUTH_AUDIENCE.
    Token {
        /// The subject (`sub`): a user's UUID for user tokens.
        sub: String,
        /// A scope to grant (repeatable; e.g. payments:topup).
        #[arg(long = "scope", value_name = "S")]
        scopes: Vec<String>,
        /// Validity in seconds.
        #[arg(long = "ttl-s", value_name = "N", default_value_t = DEFAULT_TTL_S)]
        ttl_s: u64,
    },
    /// Serve POST /auth/token, GET /auth/jwks.json and GET /health until SIGTERM.
    Serve {
        /// Port to listen on.
        #[arg(long, env = "DEVAUTH_PORT", default_value_t = 8084)]
        port: u16,
        /// The key directory `devauth keys` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// Interface to listen on (0.0.0.0 in a container).
        #[arg(long, env = "DEVAUTH_HOST", default_value = "127.0.0.1")]
        host: String,
        /// Validity of the issued tokens, in seconds.
        #[arg(long = "ttl-s", value_name = "N", default_value_t = DEFAULT_TTL_S)]
        ttl_s: u64,
    },
}

const STACK_HINT: &str = "source .stack/env of a stack started with AUTH=jwt";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys { dir, rotate } => keys(&dir, rotate),
        Command::Token { sub, scopes, ttl_s } => token(&sub, &scopes, ttl_s),
        Command::Serve {
            port,
            dir,
            host,
            ttl_s,
        } => serve(&host, port, dir, ttl_s),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("devauth: {message}");
            ExitCode::FAILURE
        }
    }
}

fn keys(dir: &std::path::Path, rotate: bool) -> Result<(), String> {
    let files = devauth::generate(dir, rotate).map_err(|e| format!("keys: {e}"))?;
    if let Some(previous) = &files.previous_kid {
        eprintln!("devauth: rotated; {previous} stays in the JWKS for the tokens it signed");
    }
    println!("{}", files.kid);
    Ok(())
}

fn token(sub: &str, scopes: &[String], ttl_s: u64) -> Result<(), String> {
    if sub.trim().is_empty() {
        return Err("token: SUB must not be empty".into());
    }
    let signer = match Signer::from_env() {
        Ok(Some(signer)) => signer,
        Ok(None) => {
            return Err(format!(
                "token: authentication is off (AUTH=off, or neither AUTH nor AUTH_SIGNING_KEY \
                 set): {STACK_HINT}"
            ));
        }
        Err(e) => return Err(format!("token: {e}: {STACK_HINT}")),
    };
    let scopes: Vec<&str> = scopes.iter().flat_map(|s| s.split_whitespace()).collect();
    println!(
        "{}",
        signer.token_for(sub.trim(), &scopes, Duration::from_secs(ttl_s))
    );
    Ok(())
}

fn serve(host: &str, port: u16, dir: PathBuf, ttl_s: u64) -> Result<(), String> {
    let setting = |name: &str, default: &str| {
        std::env::var(name)
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| default.to_owned())
    };
    let config = devauth::server::Config {
        dir,
        issuer: setting(ENV_ISSUER, DEFAULT_ISSUER),
        audience: setting(ENV_AUDIENCE, DEFAULT_AUDIENCE),
        ttl: Duration::from_secs(ttl_s.max(1)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("serve: cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        platform::telemetry::init("devauth");
        let shutdown = platform::shutdown::on_signal();
        devauth::server::run(host, port, config, shutdown)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "devauth serve failed");
                format!("serve: {e}")
            })
    })
}
