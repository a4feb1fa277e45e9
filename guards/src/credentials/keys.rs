//! Signing keys: Ed25519, generated on first use, kept in a directory only the owner can read,
//! rotated without breaking tokens already issued, and published as a JWK set.
//!
//! The directory holds one `<kid>.key.json` per key (mode 0600: the private key) and
//! `jwks.json` (the public keys, for tool servers to verify with). Rotation makes a new key the
//! signing key and keeps the old one's public half published until every token it signed has
//! expired; [`KeyRing::prune`] then removes it, and tokens it signed fail as `unknown_key`.
//!
//! The same keys sign the audit log's checkpoints and approval records, which must verify for as
//! long as the log is kept, long after any token. So a pruned key's public half moves to
//! `archive.jwks.json`, and `audit-jwks.json` publishes every key that ever signed (the token
//! keys and the archive): the JWK set an auditor verifies a log with. Tokens are only ever checked
//! against `jwks.json`, so a pruned key never again passes for a token.
//!
//! A key file that others can read, or that does not parse, stops the start with an error naming
//! the file: an issuer must never run on a key it cannot vouch for.
//!
//! The directory is part of the trust boundary: whoever can write to it can plant a key that the
//! ring would load, publish in `jwks.json` and sign with. So before it reads a single key,
//! [`KeyRing::open_within`] refuses a key directory, or any directory above it up to the root the
//! caller trusts (the audit dir), that group or others can write or that another user owns; it
//! refuses a key file owned by another user, and a key dated more than five minutes in the future,
//! which would otherwise win as the newest and become the signing key. What the ring creates it
//! creates 0700 (directories) and 0600 (files) whatever the umask, so these checks never refuse
//! Warden's own work. Directories above the root are not checked: a sticky, root-owned `/tmp`
//! holding a private temporary directory is safe, and is exactly what the checks would refuse.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The keys of one issuer.
pub struct KeyRing {
    dir: PathBuf,
    keys: Vec<SigningKey>,
}

/// One Ed25519 key.
struct SigningKey {
    stored: StoredKey,
    encoding: EncodingKey,
    public: Vec<u8>,
}

/// A key as written to its file.
#[derive(Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    /// When the key was made (seconds since the epoch).
    created: u64,
    /// When it stopped signing, if it has.
    #[serde(default)]
    retired: Option<u64>,
    /// The PKCS#8 (v2) document, base64.
    pkcs8: String,
}

/// Why the key directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading or writing failed.
    #[error("key store `{path}`: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A private key file is readable or writable by others than its owner.
    #[error(
        "key file `{path}` has mode {mode:o}: a private key must be 600 (run `chmod 600 {path}`)"
    )]
    Permissions {
        /// The file.
        path: String,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file does not hold a key.
    #[error("key file `{path}` is not a valid key: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A key file belongs to another user, who could have written any key into it.
    #[error(
        "key file `{path}` is owned by uid {owner}, not by this process's uid {process}: a private \
         key must belong to the issuer that signs with it"
    )]
    ForeignFile {
        /// The file.
        path: String,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        process: u32,
    },
    /// A key says it was made more than five minutes from now: as the newest key it would become
    /// the signing key.
    #[error(
        "key file `{path}` says it was created at {created}, more than five minutes after now \
         ({now}): a key dated ahead would become the signing key (check the clock, or remove the \
         file)"
    )]
    FutureKey {
        /// The file.
        path: String,
        /// The creation time it records (seconds since the epoch).
        created: u64,
        /// The time the ring was opened at.
        now: u64,
    },
    /// The key directory, or a directory above it up to the trusted root, can be written by group
    /// or others: any of them could plant a signing key.
    #[error(
        "{} `{path}` is writable by group or others (mode {mode:04o}): another user could plant a \
         signing key; run `chmod go-w {path}`",
        place(*above)
    )]
    WritableDirectory {
        /// The directory.
        path: String,
        /// Its permission bits, with the setuid, setgid and sticky bits.
        mode: u32,
        /// Whether it is a directory above the key directory rather than the key directory.
        above: bool,
    },
    /// The key directory, or a directory above it up to the trusted root, belongs to another user
    /// (neither this process's nor root), who could plant a signing key.
    #[error(
        "{} `{path}` is owned by uid {owner}, not by this process's uid {process}: that user could \
         plant a signing key",
        place(*above)
    )]
    ForeignDirectory {
        /// The directory.
        path: String,
        /// Its owner.
        owner: u32,
        /// The effective uid of this process.
        process: u32,
        /// Whether it is a directory above the key directory rather than the key directory.
        above: bool,
    },
    /// The key directory is not inside the root it was to be checked up to.
    #[error("key directory `{dir}` is not inside `{root}`, the directory it is checked up to")]
    OutsideRoot {
        /// The key directory, resolved.
        dir: String,
        /// The trusted root, resolved.
        root: String,
    },
    /// Generating a key failed.
    #[error("could not generate a signing key")]
    Generate,
}

impl KeyRing {
    /// Loads the keys in `dir`, creating the directory (mode 0700) and a first key if there are
    /// none. Checks the key directory itself only; a caller whose key directory lives inside a
    /// directory it trusts (an audit dir) should use [`open_within`](Self::open_within), so that
    /// the directories in between are checked too.
    pub fn open(dir: impl AsRef<Path>, now: u64) -> Result<Self, KeyError> {
        Self::open_within(dir.as_ref(), dir.as_ref(), now)
    }

    /// Loads the keys in `dir`, which must lie inside `root`, creating any missing directory
    /// (mode 0700) and a first key if there are none.
    ///
    /// Before any key is read, `dir` and every directory above it up to `root` inclusive must be
    /// owned by this process's user (or root) and not writable by group or others; every key file
    /// must be owned by this process's user, readable by nobody else, and dated no more than five
    /// minutes after `now`. Anything else is an error naming the path: nothing is loaded, signed
    /// or published. Directories above `root` are not checked (see the module docs).
    pub fn open_within(
        root: impl AsRef<Path>,
        dir: impl AsRef<Path>,
        now: u64,
    ) -> Result<Self, KeyError> {
        let dir = current_if_empty(dir.as_ref()).to_path_buf();
        let root = current_if_empty(root.as_ref());
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| KeyError::Io { path, source }
        };
        create_private_directories(&dir)?;
        check_directories(root, &dir)?;
        // Two processes opening one new directory must not both mint a key or both publish.
        let _lock = lock(&dir)?;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            if path.to_string_lossy().ends_with(KEY_SUFFIX) {
                keys.push(load_key(&path, now)?);
            }
        }
        keys.sort_by_key(|key| key.stored.created);
        let mut ring = Self { dir, keys };
        if ring.keys.iter().all(|key| key.stored.retired.is_some()) {
            ring.add_key(now)?;
        }
        ring.publish()?;
        Ok(ring)
    }

    /// The key that signs new tokens: the newest one not retired.
    pub(crate) fn signing_key(&self) -> Option<(&str, &EncodingKey)> {
        self.keys
            .iter()
            .rev()
            .find(|key| key.stored.retired.is_none())
            .map(|key| (key.stored.kid.as_str(), &key.encoding))
    }

    /// Makes a new signing key and retires the current one; its public half stays published
    /// until [`prune`](Self::prune) finds its last token expired. Returns the new key id.
    pub fn rotate(&mut self, now: u64) -> Result<String, KeyError> {
        let _lock = lock(&self.dir)?;
        for key in &mut self.keys {
            if key.stored.retired.is_none() {
                key.stored.retired = Some(now);
                write_key(&self.dir, &key.stored)?;
            }
        }
        let kid = self.add_key(now)?;
        self.publish()?;
        Ok(kid)
    }

    /// Removes the keys retired more than `max_token_lifetime` seconds ago: no token they signed
    /// can still be valid. Returns the removed key ids.
    pub fn prune(&mut self, now: u64, max_token_lifetime: u64) -> Result<Vec<String>, KeyError> {
        let _lock = lock(&self.dir)?;
        let (expired, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.keys).into_iter().partition(|key| {
                key.stored.retired.is_some_and(|at| at.saturating_add(max_token_lifetime) < now)
            });
        self.keys = kept;
        let mut archive = self.archive()?;
        for key in &expired {
            archive.push(public_jwk(&key.stored.kid, &key.public));
        }
        if !expired.is_empty() {
            write_atomically(&self.dir, ARCHIVE_FILE, &json!({ "keys": archive }))?;
        }
        let mut removed = Vec::new();
        for key in expired {
            let path = key_path(&self.dir, &key.stored.kid);
            std::fs::remove_file(&path)
                .map_err(|source| KeyError::Io { path: path.display().to_string(), source })?;
            removed.push(key.stored.kid);
        }
        self.publish()?;
        Ok(removed)
    }

    /// The public keys as a JWK set (RFC 7517): `{"keys": [{"kty": "OKP", "crv": "Ed25519", …}]}`.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> =
            self.keys.iter().map(|key| public_jwk(&key.stored.kid, &key.public)).collect();
        json!({ "keys": keys })
    }

    /// Every key that ever signed, pruned ones included: the JWK set to verify audit logs with.
    pub fn audit_jwks(&self) -> Result<Value, KeyError> {
        let mut keys = self.archive()?;
        keys.extend(self.keys.iter().map(|key| public_jwk(&key.stored.kid, &key.public)));
        Ok(json!({ "keys": keys }))
    }

    /// Where the JWK set is published.
    pub fn jwks_path(&self) -> PathBuf {
        self.dir.join(JWKS_FILE)
    }

    /// Where the audit JWK set (every key that ever signed) is published.
    pub fn audit_jwks_path(&self) -> PathBuf {
        self.dir.join(AUDIT_JWKS_FILE)
    }

    /// The public halves of pruned keys.
    fn archive(&self) -> Result<Vec<Value>, KeyError> {
        let path = self.dir.join(ARCHIVE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(KeyError::Io { path: path.display().to_string(), source }),
        };
        let archive: Value = serde_json::from_str(&text).map_err(|error| KeyError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, error),
        })?;
        Ok(archive.get("keys").and_then(Value::as_array).cloned().unwrap_or_default())
    }

    fn add_key(&mut self, now: u64) -> Result<String, KeyError> {
        let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
        let pkcs8 = pair.to_pkcs8().map_err(|_| KeyError::Generate)?;
        let kid = format!("k{now}-{}", super::random_hex(4).map_err(|_| KeyError::Generate)?);
        let stored = StoredKey {
            kid: kid.clone(),
            created: now,
            retired: None,
            pkcs8: STANDARD.encode(pkcs8.as_ref()),
        };
        write_key(&self.dir, &stored)?;
        let encoding = EncodingKey::from_ed_der(pkcs8.as_ref());
        self.keys.push(SigningKey {
            stored,
            encoding,
            public: pair.public_key().as_ref().to_vec(),
        });
        Ok(kid)
    }

    /// Writes `jwks.json` and `audit-jwks.json`, each atomically.
    fn publish(&self) -> Result<(), KeyError> {
        write_atomically(&self.dir, JWKS_FILE, &self.jwks())?;
        write_atomically(&self.dir, AUDIT_JWKS_FILE, &self.audit_jwks()?)
    }
}

/// One public key as a JWK (RFC 8037).
fn public_jwk(kid: &str, public: &[u8]) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "alg": "EdDSA",
        "use": "sig",
        "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(public),
    })
}

/// Writes `dir/name` atomically (a temporary file, then rename).
fn write_atomically(dir: &Path, name: &str, value: &Value) -> Result<(), KeyError> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let mut file = private_file(&temporary).map_err(io)?;
    file.write_all(value.to_string().as_bytes()).map_err(io)?;
    std::fs::rename(&temporary, &path).map_err(io)
}

const KEY_SUFFIX: &str = ".key.json";
const JWKS_FILE: &str = "jwks.json";
const AUDIT_JWKS_FILE: &str = "audit-jwks.json";
const ARCHIVE_FILE: &str = "archive.jwks.json";

const LOCK_FILE: &str = ".lock";

/// How far after `now` a key's creation time may lie (clocks differ a little) before the key is
/// refused as dated in the future.
const FUTURE_LEEWAY_SECONDS: u64 = 300;

/// The thing an unsafe directory is, in an error message.
fn place(above: bool) -> &'static str {
    if above { "directory above the key directory" } else { "key directory" }
}

/// `path`, or `.` if it is empty (the parent of a bare file name).
fn current_if_empty(path: &Path) -> &Path {
    if path.as_os_str().is_empty() { Path::new(".") } else { path }
}

/// Creates `dir` and whichever of its parents are missing, each mode 0700 whatever the umask.
/// A directory another process made meanwhile is left as it is: the checks judge it.
fn create_private_directories(dir: &Path) -> Result<(), KeyError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|directory| !directory.as_os_str().is_empty() && !directory.exists())
        .collect();
    for directory in missing.into_iter().rev() {
        let io = |source| KeyError::Io { path: directory.display().to_string(), source };
        match DirBuilder::new().mode(0o700).create(directory) {
            // The umask may have taken bits from 0700 (never added any): put them back.
            Ok(()) => {
                std::fs::set_permissions(directory, Permissions::from_mode(0o700)).map_err(io)?
            }
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io(error)),
        }
    }
    Ok(())
}

/// Refuses `dir` unless it and every directory above it up to `root` inclusive are owned by this
/// process's user or root and writable by nobody else. The paths are resolved first, so a symbolic
/// link cannot point the checks at one directory and the reads at another.
fn check_directories(root: &Path, dir: &Path) -> Result<(), KeyError> {
    let resolve = |path: &Path| {
        std::fs::canonicalize(path)
            .map_err(|source| KeyError::Io { path: path.display().to_string(), source })
    };
    let (dir, root) = (resolve(dir)?, resolve(root)?);
    if !dir.starts_with(&root) {
        return Err(KeyError::OutsideRoot {
            dir: dir.display().to_string(),
            root: root.display().to_string(),
        });
    }
    let process = rustix::process::geteuid().as_raw();
    for (depth, directory) in dir.ancestors().enumerate() {
        let shown = directory.display().to_string();
        let metadata = std::fs::symlink_metadata(directory)
            .map_err(|source| KeyError::Io { path: shown.clone(), source })?;
        let above = depth > 0;
        // Root may do anything anyway, so a root-owned directory costs no trust: it lets the
        // audit dir sit in a directory root made for the service.
        let owner = metadata.uid();
        if owner != process && owner != 0 {
            return Err(KeyError::ForeignDirectory { path: shown, owner, process, above });
        }
        let mode = metadata.mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(KeyError::WritableDirectory { path: shown, mode, above });
        }
        if directory == root {
            break;
        }
    }
    Ok(())
}

/// Opens `path` for writing, created or truncated, mode 0600 whatever the umask.
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(Permissions::from_mode(0o600))?;
    Ok(file)
}

/// An exclusive lock on the key directory, held until the returned file is dropped: key files and
/// `jwks.json` change only under it, so concurrent processes sharing a directory (two demo runs
/// started together) never read a half-written key or rename each other's `jwks.json.tmp` away.
fn lock(dir: &Path) -> Result<std::fs::File, KeyError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    file.set_permissions(Permissions::from_mode(0o600)).map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

fn key_path(dir: &Path, kid: &str) -> PathBuf {
    dir.join(format!("{kid}{KEY_SUFFIX}"))
}

fn write_key(dir: &Path, stored: &StoredKey) -> Result<(), KeyError> {
    let path = key_path(dir, &stored.kid);
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    let text = serde_json::to_string_pretty(stored).map_err(|error| io(error.into()))?;
    let mut file = private_file(&path).map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)
}

fn load_key(path: &Path, now: u64) -> Result<SigningKey, KeyError> {
    let shown = path.display().to_string();
    let metadata =
        std::fs::metadata(path).map_err(|source| KeyError::Io { path: shown.clone(), source })?;
    let (owner, process) = (metadata.uid(), rustix::process::geteuid().as_raw());
    if owner != process {
        return Err(KeyError::ForeignFile { path: shown, owner, process });
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: shown, mode });
    }
    let invalid = |message: String| KeyError::Invalid { path: shown.clone(), message };
    let text = std::fs::read_to_string(path)
        .map_err(|source| KeyError::Io { path: shown.clone(), source })?;
    let stored: StoredKey =
        serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?;
    let der = STANDARD.decode(&stored.pkcs8).map_err(|error| invalid(format!("pkcs8: {error}")))?;
    let pair = Ed25519KeyPair::from_pkcs8(&der)
        .map_err(|error| invalid(format!("not an Ed25519 PKCS#8 key: {error}")))?;
    if key_path(path.parent().unwrap_or(Path::new(".")), &stored.kid) != path {
        return Err(invalid(format!("the file name does not match its key id `{}`", stored.kid)));
    }
    if stored.created > now.saturating_add(FUTURE_LEEWAY_SECONDS) {
        return Err(KeyError::FutureKey { path: shown, created: stored.created, now });
    }
    Ok(SigningKey {
        encoding: EncodingKey::from_ed_der(&der),
        public: pair.public_key().as_ref().to_vec(),
        stored,
    })
}
