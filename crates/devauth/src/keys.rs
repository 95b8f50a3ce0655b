//! The key directory: `signing-key.pem` (the private key, PKCS#8, mode 0600), `kid` (its key
//! id, text) and `jwks.json` (the public keys the gateway verifies with).
//!
//! The `kid` is the key's RFC 7638 thumbprint, so it follows from the key itself: the three files
//! can always be checked against each other, and repaired from the key when one is missing.
//! Rotation keeps exactly one previous public key in the JWKS: a token signed just before the
//! rotation verifies until it expires, and the set stays two keys long however often one rotates.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::AlgorithmParameters;
use p256::elliptic_curve::Generate as _;
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::{Value, json};

use crate::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, Error, Signer};

/// The private key's file name in the key directory.
pub const KEY_FILE: &str = "signing-key.pem";
/// The file holding the signing key's `kid` (one line of text).
pub const KID_FILE: &str = "kid";
/// The JWKS file name (`AUTH_JWKS` points at it).
pub const JWKS_FILE: &str = "jwks.json";

/// What [`generate`] left in the key directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The private key PEM (`AUTH_SIGNING_KEY`).
    pub signing_key: PathBuf,
    /// The file holding [`KeyFiles::kid`].
    pub kid_file: PathBuf,
    /// The JWKS (`AUTH_JWKS`).
    pub jwks: PathBuf,
    /// The signing key's `kid` (`AUTH_SIGNING_KID`).
    pub kid: String,
    /// The `kid` of the previous signing key, still in the JWKS after a rotation.
    pub previous_kid: Option<String>,
    /// Whether a new key was generated (false: the existing one was kept).
    pub created: bool,
}

/// Makes sure `dir` holds a signing key, its `kid` and a JWKS that contains it, and returns the
/// paths and the `kid`.
///
/// Idempotent: without `rotate` an existing key is kept (a stack restarted keeps verifying the
/// tokens it issued); a missing or stale `kid` or JWKS is rewritten from it. With `rotate` a new
/// P-256 key becomes the signing key and the JWKS lists it first and the previous key second, so
/// tokens of the old `kid` still verify (rotation by `kid`). Files are replaced atomically, the
/// JWKS first: a reader never finds a signing key whose public half is not published yet.
pub fn generate(dir: &Path, rotate: bool) -> Result<KeyFiles, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let key_path = dir.join(KEY_FILE);
    let kid_path = dir.join(KID_FILE);
    let jwks_path = dir.join(JWKS_FILE);
    let existing = if key_path.exists() {
        match Signer::from_file(&key_path, None, DEFAULT_ISSUER, DEFAULT_AUDIENCE) {
            Ok(signer) => Some(signer),
            // Rotating away from a broken key is the way out of it; keeping it is not.
            Err(_) if rotate => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };

    let files = |kid: String, previous_kid, created| KeyFiles {
        signing_key: key_path.clone(),
        kid_file: kid_path.clone(),
        jwks: jwks_path.clone(),
        kid,
        previous_kid,
        created,
    };

    if let (Some(current), false) = (&existing, rotate) {
        // Keep the key; publish it if the JWKS lost it, keeping whatever else the JWKS lists.
        let mut keys = read_jwks(&jwks_path).unwrap_or_default();
        if !keys.iter().any(|k| k["kid"] == current.kid()) {
            keys.insert(0, public_jwk_json(current));
            write_atomic(&jwks_path, jwks_text(keys).as_bytes(), 0o644)?;
        }
        if std::fs::read_to_string(&kid_path)
            .ok()
            .as_deref()
            .map(str::trim)
            != Some(current.kid())
        {
            write_atomic(&kid_path, format!("{}\n", current.kid()).as_bytes(), 0o644)?;
        }
        return Ok(files(current.kid().to_owned(), None, false));
    }

    let secret = p256::SecretKey::try_generate()
        .map_err(|e| Error::Key(format!("no randomness from the operating system: {e}")))?;
    let pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| Error::Key(format!("cannot encode the new key: {e}")))?;
    let probe = Signer::from_pem(pem.as_bytes(), "new", DEFAULT_ISSUER, DEFAULT_AUDIENCE)?;
    let signer = probe.with_kid(&probe.thumbprint()?);

    let mut keys = vec![public_jwk_json(&signer)];
    let previous_kid = existing.as_ref().map(|s| s.kid().to_owned());
    if let Some(previous) = &existing {
        keys.push(public_jwk_json(previous));
    }
    write_atomic(&jwks_path, jwks_text(keys).as_bytes(), 0o644)?;
    write_atomic(&key_path, pem.as_bytes(), 0o600)?;
    write_atomic(&kid_path, format!("{}\n", signer.kid()).as_bytes(), 0o644)?;
    Ok(files(signer.kid().to_owned(), previous_kid, true))
}

/// Writes a new 2048-bit RSA private key (PKCS#8 PEM) to `path` with `openssl genpkey`, for the
/// RS256 path: the dev stack signs ES256, and RSA key generation without optimisations would
/// take a test many seconds.
pub fn generate_rsa(path: &Path) -> Result<(), Error> {
    let status = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .map_err(|e| Error::io(Path::new("openssl"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Key(format!("openssl genpkey exited with {status}")))
    }
}

/// `signer`'s public key as a JWKS entry: `kty`, the key's parameters (`crv`, `x`, `y` or `n`,
/// `e`), `kid`, `alg`, `use: sig` — the members a verifier needs to pick and use it.
pub fn public_jwk_json(signer: &Signer) -> Value {
    let alg = match signer.algorithm() {
        jsonwebtoken::Algorithm::RS256 => "RS256",
        _ => "ES256",
    };
    match &signer.public_jwk().algorithm {
        AlgorithmParameters::RSA(rsa) => json!({
            "kty": "RSA", "n": rsa.n, "e": rsa.e, "kid": signer.kid(), "alg": alg, "use": "sig",
        }),
        AlgorithmParameters::EllipticCurve(ec) => json!({
            "kty": "EC", "crv": "P-256", "x": ec.x, "y": ec.y, "kid": signer.kid(), "alg": alg,
            "use": "sig",
        }),
        // Signer accepts only P-256 and RSA keys.
        _ => json!({ "kid": signer.kid(), "alg": alg, "use": "sig" }),
    }
}

/// The JWKS document (`{"keys":[...]}`) of `signers`: for a test that serves its own keys.
pub fn jwks(signers: &[&Signer]) -> Value {
    json!({ "keys": signers.iter().map(|s| public_jwk_json(s)).collect::<Vec<_>>() })
}

fn jwks_text(keys: Vec<Value>) -> String {
    let mut text = serde_json::to_string_pretty(&json!({ "keys": keys }))
        .unwrap_or_else(|_| String::from("{\"keys\":[]}"));
    text.push('\n');
    text
}

/// The `keys` of a JWKS file; `None` when it is missing or not a JWKS.
fn read_jwks(path: &Path) -> Option<Vec<Value>> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    doc.get("keys")?.as_array().cloned()
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader sees the old content or the new, never half of it; `mode` is set before the content
/// is written (a private key is never readable by others, not even for a moment).
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    use std::time::Duration;

    fn tempdir(name: &str) -> TempDir {
        TempDir::new(name)
    }

    fn signer_of(files: &KeyFiles) -> Signer {
        let pem = std::fs::read(&files.signing_key).unwrap();
        Signer::from_pem(&pem, &files.kid, DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap()
    }

    /// Verifies `token` the way the gateway does: key by `kid` from the JWKS file, algorithm,
    /// issuer, audience, expiry.
    fn verify(jwks_path: &Path, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let set: JwkSet = serde_json::from_str(&std::fs::read_to_string(jwks_path).unwrap())
            .expect("jwks.json parses as a JWK set");
        let header = decode_header(token)?;
        let kid = header.kid.expect("token has a kid");
        let jwk = set.find(&kid).ok_or_else(|| {
            jsonwebtoken::errors::Error::from(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)
        })?;
        let key = DecodingKey::from_jwk(jwk)?;
        // The algorithm follows from the key, never from the token's header (alg confusion):
        // jsonwebtoken refuses a header `alg` outside `algorithms`.
        let alg = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => jsonwebtoken::Algorithm::RS256,
            _ => jsonwebtoken::Algorithm::ES256,
        };
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[DEFAULT_ISSUER]);
        validation.set_audience(&[DEFAULT_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        decode::<Value>(token, &key, &validation).map(|data| data.claims)
    }

    #[test]
    fn a_generated_keys_token_verifies_against_the_written_jwks() {
        let dir = tempdir("verify");
        let files = generate(&dir, false).unwrap();
        assert!(files.created);
        assert_eq!(
            std::fs::read_to_string(&files.kid_file).unwrap().trim(),
            files.kid
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files.signing_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the private key is private");
        }
        let pem = std::fs::read_to_string(&files.signing_key).unwrap();
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8: {pem}"
        );

        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&files.jwks).unwrap()).unwrap();
        let key = &doc["keys"][0];
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
        assert_eq!(key["alg"], "ES256");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["kid"], files.kid.as_str());
        assert_eq!(doc["keys"].as_array().unwrap().len(), 1);

        let signer = signer_of(&files);
        assert_eq!(signer.algorithm(), jsonwebtoken::Algorithm::ES256);
        let user = uuid::Uuid::new_v4().to_string();
        let token = signer.token(&user, &["payments:topup"]);
        let claims = verify(&files.jwks, &token).unwrap();
        assert_eq!(claims["sub"], user.as_str());
        assert_eq!(claims["scope"], "payments:topup");
        assert_eq!(claims["iss"], DEFAULT_ISSUER);
        assert_eq!(claims["aud"], DEFAULT_AUDIENCE);
        let (iat, nbf, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["nbf"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(iat, nbf);
        assert_eq!(exp - iat, crate::DEFAULT_TTL_S);
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());

        // Idempotent: the same key, kid and JWKS again.
        let again = generate(&dir, false).unwrap();
        assert!(!again.created);
        assert_eq!(again.kid, files.kid);
        assert_eq!(std::fs::read_to_string(&again.signing_key).unwrap(), pem);
        assert!(verify(&again.jwks, &token).is_ok());
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint_and_a_lost_jwks_is_rewritten() {
        let dir = tempdir("repair");
        let files = generate(&dir, false).unwrap();
        let signer = signer_of(&files);
        assert_eq!(signer.thumbprint().unwrap(), files.kid);
        // base64url of 32 bytes of SHA-256, no padding.
        assert_eq!(files.kid.len(), 43);
        std::fs::remove_file(&files.jwks).unwrap();
        std::fs::write(&files.kid_file, "stale\n").unwrap();
        let repaired = generate(&dir, false).unwrap();
        assert!(!repaired.created);
        assert_eq!(repaired.kid, files.kid);
        assert_eq!(
            std::fs::read_to_string(&repaired.kid_file).unwrap().trim(),
            files.kid
        );
        assert!(verify(&repaired.jwks, &signer.token("someone", &[])).is_ok());
    }

    #[test]
    fn rotation_signs_with_a_new_kid_and_keeps_the_previous_key_verifying() {
        let dir = tempdir("rotate");
        let first = generate(&dir, false).unwrap();
        let old_token = signer_of(&first).token("user", &[]);

        let second = generate(&dir, true).unwrap();
        assert!(second.created);
        assert_ne!(second.kid, first.kid);
        assert_eq!(second.previous_kid.as_deref(), Some(first.kid.as_str()));
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&second.jwks).unwrap()).unwrap();
        let kids: Vec<&str> = doc["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, [second.kid.as_str(), first.kid.as_str()]);

        let new_signer = signer_of(&second);
        let new_token = new_signer.token("user", &[]);
        assert_eq!(
            decode_header(&new_token).unwrap().kid.as_deref(),
            Some(second.kid.as_str())
        );
        assert!(verify(&second.jwks, &new_token).is_ok());
        assert!(
            verify(&second.jwks, &old_token).is_ok(),
            "the old kid still verifies"
        );

        // A second rotation drops the oldest key: the set stays two keys long.
        let third = generate(&dir, true).unwrap();
        assert!(verify(&third.jwks, &new_token).is_ok());
        assert!(verify(&third.jwks, &old_token).is_err());
    }

    #[test]
    fn an_rsa_pem_signs_rs256() {
        let dir = tempdir("rsa");
        let pem_path = dir.join("rsa.pem");
        generate_rsa(&pem_path).expect("openssl is installed");
        let pem = std::fs::read(&pem_path).unwrap();
        let signer = Signer::from_pem(&pem, "rsa-1", DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap();
        assert_eq!(signer.algorithm(), jsonwebtoken::Algorithm::RS256);
        let jwks_path = dir.join("jwks.json");
        std::fs::write(&jwks_path, jwks(&[&signer]).to_string()).unwrap();
        let token = signer.token("operator", &["payments:topup"]);
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("rsa-1"));
        let claims = verify(&jwks_path, &token).unwrap();
        assert_eq!(claims["sub"], "operator");

        // The same key in PKCS#1 (`BEGIN RSA PRIVATE KEY`) is read too.
        let pkcs1 = std::process::Command::new("openssl")
            .args(["rsa", "-traditional", "-in"])
            .arg(&pem_path)
            .stderr(std::process::Stdio::null())
            .output()
            .expect("openssl rsa");
        if pkcs1.status.success() {
            let signer =
                Signer::from_pem(&pkcs1.stdout, "rsa-1", DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap();
            assert!(verify(&jwks_path, &signer.token("operator", &[])).is_ok());
        }
    }

    #[test]
    fn keys_the_gateway_would_refuse_are_refused_at_load() {
        let dir = tempdir("refused");
        for (name, args) in [
            (
                "p384",
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-384",
                ][..],
            ),
            (
                "rsa1024",
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:1024",
                ][..],
            ),
            ("ed25519", &["genpkey", "-algorithm", "ED25519"][..]),
        ] {
            let path = dir.join(format!("{name}.pem"));
            let ok = std::process::Command::new("openssl")
                .args(args)
                .arg("-out")
                .arg(&path)
                .stderr(std::process::Stdio::null())
                .status()
                .expect("openssl is installed")
                .success();
            if !ok {
                continue; // this openssl refuses to make it (e.g. RSA 1024 under a strict policy)
            }
            let pem = std::fs::read(&path).unwrap();
            let err = Signer::from_pem(&pem, "k", DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap_err();
            assert!(matches!(err, Error::Key(_)), "{name}: {err}");
        }
        // SEC1 (`openssl ecparam -genkey`): P-256 is read, another curve refused.
        for (curve, accepted) in [("prime256v1", true), ("secp384r1", false)] {
            let out = std::process::Command::new("openssl")
                .args(["ecparam", "-genkey", "-noout", "-name", curve])
                .stderr(std::process::Stdio::null())
                .output()
                .expect("openssl is installed");
            assert!(out.status.success());
            assert!(String::from_utf8_lossy(&out.stdout).contains("BEGIN EC PRIVATE KEY"));
            let loaded = Signer::from_pem(&out.stdout, "k", DEFAULT_ISSUER, DEFAULT_AUDIENCE);
            assert_eq!(loaded.is_ok(), accepted, "{curve}: {loaded:?}");
        }
        let err =
            Signer::from_pem(b"not a pem", "k", DEFAULT_ISSUER, DEFAULT_AUDIENCE).unwrap_err();
        assert!(matches!(err, Error::Key(_)), "{err}");
    }

    #[test]
    fn raw_tokens_for_negative_tests() {
        let dir = tempdir("raw");
        let files = generate(&dir, false).unwrap();
        let signer = signer_of(&files);

        let mut expired = signer.claims("user", &[], Duration::from_secs(60));
        expired["exp"] = json!(1_000_000_000u64);
        expired["nbf"] = json!(999_999_000u64);
        expired["iat"] = json!(999_999_000u64);
        let token = signer.sign_raw(signer.header(), &expired);
        assert!(matches!(
            verify(&files.jwks, &token).unwrap_err().kind(),
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
        ));

        let mut other_aud = signer.claims("user", &[], Duration::from_secs(60));
        other_aud["aud"] = json!("someone-else");
        let token = signer.sign_raw(signer.header(), &other_aud);
        assert!(matches!(
            verify(&files.jwks, &token).unwrap_err().kind(),
            jsonwebtoken::errors::ErrorKind::InvalidAudience
        ));

        let token = signer.with_kid("unknown").token("user", &[]);
        assert!(verify(&files.jwks, &token).is_err(), "unknown kid");

        let wrong_iss = signer.with_issuer_audience("elsewhere", DEFAULT_AUDIENCE);
        assert!(matches!(
            verify(&files.jwks, &wrong_iss.token("user", &[]))
                .unwrap_err()
                .kind(),
            jsonwebtoken::errors::ErrorKind::InvalidIssuer
        ));

        // A header claiming RS256 over an ES256 signature, and an unsigned token: both refused.
        let mut header = signer.header();
        header.alg = jsonwebtoken::Algorithm::RS256;
        let claims = signer.claims("user", &[], Duration::from_secs(60));
        assert!(verify(&files.jwks, &signer.sign_raw(header, &claims)).is_err());
        let none = crate::unsecured(&claims);
        assert!(none.ends_with('.'));
        assert!(verify(&files.jwks, &none).is_err());

        // And the untouched raw path is a valid token.
        assert!(verify(&files.jwks, &signer.sign_raw(signer.header(), &claims)).is_ok());
    }
}
