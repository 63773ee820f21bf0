//! Extensions defined through the admin API (FEATURES EXT-01: "An extension is defined in
//! the configuration or through the API"; SEC-09: "A new extension gets a random
//! 20-character SIP password").
//!
//! # What it owns
//! - The API's model: [`NewExtension`] (the body of `POST /api/v1/extensions`),
//!   [`ExtensionView`] (one entry of `GET /api/v1/extensions`), [`Created`] (the 201, with
//!   the generated password, shown this once), and [`ExtensionError`] with its HTTP status
//!   and the field it is about.
//! - Validation, with the config file's rules (`crate::config::value`): number, auth ID,
//!   password (`auth.min_password_length`, not the number or auth ID), display name (no
//!   control characters), networks (CIDR, no duplicates); a number or auth ID already used
//!   by a file or API extension is a conflict.
//! - Password generation from the OS RNG ([`generate_password`]).
//! - The [`Directory`]: the driver thread's record of API extensions, loaded from the store
//!   at start, merged with the file's extensions into the endpoint's users at start and on
//!   every reload (the file wins a conflict: the API one is skipped with a warning and
//!   listed as `shadowed`), and the create/delete/list requests the admin thread sends
//!   (through [`crate::driver::DriverHandle::extensions`]).
//!
//! # Credentials at rest
//! The store never holds the password, only `HA1 = H(auth_id:realm:password)` for every
//! digest algorithm, computed in the realm of the moment. After a change of `auth.realm`
//! (or `sip.domain` without one) an API extension can no longer authenticate: it is logged
//! and listed with `realm_mismatch`; delete and create it again for a new password.
//!
//! # Durability
//! A create or delete is committed to the store (its own fsync'ed transaction) before the
//! request is answered, so a `kill -9` after the 201/204 loses nothing.
//!
//! # What it does not own
//! The HTTP side (`crate::admin`), the store's encoding (`crate::store`), the config file's
//! extensions (`crate::config`), authentication and registration (the control plane).
//! Changing an API extension (PUT) and the rest of the EXT-01 record (email, voicemail PIN,
//! welcome email) are not implemented.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::mpsc::SyncSender;

use serde::{Deserialize, Serialize};
use voxgate_controlplane::auth::{Algorithm, Credential, Ha1Set};
use voxgate_controlplane::config::User;
use voxgate_controlplane::security::{IpNet, IpNetError};
use voxgate_controlplane::{Endpoint, EndpointConfig};

use crate::config::value::{
    check_auth_id, check_extension_number, check_password, parse_cidr, AuthIdError, NumberError,
    PasswordError, MIN_PASSWORD_CHARS,
};
use crate::config::{Config, Secret};
use crate::driver::{DriverHandle, DriverStopped};
use crate::store::{ExtensionTable, StoreError, StoredExtension};

/// Length of a generated SIP password (SEC-09), unless `auth.min_password_length` asks for
/// more.
pub const GENERATED_PASSWORD_CHARS: usize = 20;

/// Letters and digits: survive every phone's provisioning UI and every quoting context.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A random password of `chars` letters and digits from the OS RNG, each character
/// uniformly distributed (about 5.95 bits each: 119 bits for 20 characters).
pub fn generate_password(chars: usize) -> Result<Secret, getrandom::Error> {
    let mut out = String::with_capacity(chars);
    let mut buf = [0u8; 32];
    while out.len() < chars {
        getrandom::getrandom(&mut buf)?;
        for &b in &buf {
            // 248 = 4 × 62: rejecting 248..=255 keeps every character equally likely.
            if b < 248 && out.len() < chars {
                out.push(char::from(ALPHABET[usize::from(b % 62)]));
            }
        }
    }
    Ok(Secret::new(out))
}

/// The body of `POST /api/v1/extensions`. Unknown fields are refused.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewExtension {
    pub number: String,
    /// The digest user name; default: the number.
    #[serde(default)]
    pub auth_id: Option<String>,
    /// Absent: voxgate generates one and returns it in the 201.
    #[serde(default)]
    pub password: Option<String>,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the extension may register from (CIDR); empty or absent: anywhere.
    #[serde(default)]
    pub networks: Vec<String>,
}

impl std::fmt::Debug for NewExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewExtension")
            .field("number", &self.number)
            .field("auth_id", &self.auth_id)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("name", &self.name)
            .field("networks", &self.networks)
            .finish()
    }
}

/// Where an extension is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `[[extension]]` in the configuration file.
    Config,
    /// `POST /api/v1/extensions`, kept in the store.
    Api,
}

/// One extension as `GET /api/v1/extensions` lists it. Never a password or an HA1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionView {
    pub number: String,
    pub auth_id: String,
    pub name: Option<String>,
    /// Allowed source networks; empty: anywhere.
    pub networks: Vec<String>,
    pub source: Source,
    /// SIG-02: at least one contact bound.
    pub registered: bool,
    /// Contacts bound now.
    pub contacts: usize,
    /// An API extension whose number or auth ID the file now defines: it is not in use.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadowed: bool,
    /// An API extension whose credentials were computed in another realm than the current
    /// one: it cannot authenticate.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub realm_mismatch: bool,
}

/// The answer to a successful create.
#[derive(Debug, Clone)]
pub struct Created {
    pub extension: ExtensionView,
    /// The password voxgate generated, when the request had none; shown this once.
    pub password: Option<Secret>,
}

/// Why an extension request failed. [`ExtensionError::status`] is its HTTP status,
/// [`ExtensionError::field`] the request field it is about.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    #[error("the request body is not a valid extension: {0}")]
    Body(#[source] serde_json::Error),
    #[error("number {value:?} {source}")]
    Number {
        value: String,
        #[source]
        source: NumberError,
    },
    #[error("auth_id {value:?} {source}")]
    AuthId {
        value: String,
        #[source]
        source: AuthIdError,
    },
    #[error("password {0}")]
    Password(#[source] PasswordError),
    /// A display name ends up in SIP header fields: CR/LF would inject headers.
    #[error("name must not contain control characters")]
    Name,
    #[error("networks: {value:?}: {source}")]
    Network {
        value: String,
        #[source]
        source: IpNetError,
    },
    #[error("networks: {value} is listed twice")]
    DuplicateNetwork { value: String },
    #[error("extension {number} is defined in {origin}; remove it there and reload")]
    DefinedInFile { number: String, origin: String },
    #[error("extension {number} already exists (defined through the API)")]
    Exists { number: String },
    #[error("auth_id {auth_id:?} is already used by extension {number} ({origin})")]
    AuthIdTaken {
        auth_id: String,
        number: String,
        origin: String,
    },
    #[error("no extension {number}")]
    NotFound { number: String },
    #[error("storing the extension: {0}")]
    Store(#[source] StoreError),
    #[error("voxgate runs without a store: extensions cannot be defined through the API")]
    NoStore,
    #[error("generating a password: {0}")]
    Random(getrandom::Error),
    #[error("{0}")]
    Driver(#[source] DriverStopped),
    #[error("extensions are not available in this process")]
    NotWired,
}

impl ExtensionError {
    /// The HTTP status of the admin API's answer.
    pub fn status(&self) -> u16 {
        match self {
            ExtensionError::Body(_)
            | ExtensionError::Number { .. }
            | ExtensionError::AuthId { .. }
            | ExtensionError::Password(_)
            | ExtensionError::Name
            | ExtensionError::Network { .. }
            | ExtensionError::DuplicateNetwork { .. } => 400,
            ExtensionError::DefinedInFile { .. }
            | ExtensionError::Exists { .. }
            | ExtensionError::AuthIdTaken { .. } => 409,
            ExtensionError::NotFound { .. } => 404,
            ExtensionError::Store(_) | ExtensionError::Random(_) => 500,
            ExtensionError::NoStore | ExtensionError::Driver(_) | ExtensionError::NotWired => 503,
        }
    }

    /// The request field the error is about, when there is one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            ExtensionError::Number { .. }
            | ExtensionError::DefinedInFile { .. }
            | ExtensionError::Exists { .. }
            | ExtensionError::NotFound { .. } => Some("number"),
            ExtensionError::AuthId { .. } | ExtensionError::AuthIdTaken { .. } => Some("auth_id"),
            ExtensionError::Password(_) => Some("password"),
            ExtensionError::Name => Some("name"),
            ExtensionError::Network { .. } | ExtensionError::DuplicateNetwork { .. } => {
                Some("networks")
            }
            _ => None,
        }
    }
}

/// What the driver needs to know about the configuration file beyond the endpoint's users:
/// sent by `main` at start and before every reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// Where the file extensions are defined, for messages: the config path.
    pub origin: String,
    /// `auth.min_password_length`.
    pub min_password_length: usize,
    /// Display names of the file's extensions, by number.
    pub names: HashMap<String, String>,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            origin: "the configuration file".to_owned(),
            min_password_length: MIN_PASSWORD_CHARS,
            names: HashMap::new(),
        }
    }
}

impl FileSettings {
    /// The settings of `config`, read from `path` (`None`: the embedded demo).
    pub fn from_config(config: &Config, path: Option<&Path>) -> FileSettings {
        FileSettings {
            origin: match path {
                Some(p) => p.display().to_string(),
                None => "the embedded demo configuration".to_owned(),
            },
            min_password_length: config.auth.min_password_length,
            names: config
                .extensions
                .iter()
                .filter_map(|e| Some((e.number.clone(), e.name.clone()?)))
                .collect(),
        }
    }
}

/// A request from the admin thread to the driver's [`Directory`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Request {
    /// New [`FileSettings`] (start, reload).
    Settings(Box<FileSettings>),
    List {
        reply: SyncSender<Vec<ExtensionView>>,
    },
    Create {
        new: Box<NewExtension>,
        reply: SyncSender<Result<Created, ExtensionError>>,
    },
    Delete {
        number: String,
        reply: SyncSender<Result<(), ExtensionError>>,
    },
}

/// `GET /api/v1/extensions`, asked of the driver.
pub fn list(driver: &DriverHandle) -> Result<Vec<ExtensionView>, ExtensionError> {
    driver
        .extensions(|reply| Request::List { reply })
        .map_err(ExtensionError::Driver)
}

/// `POST /api/v1/extensions`, asked of the driver.
pub fn create(driver: &DriverHandle, new: NewExtension) -> Result<Created, ExtensionError> {
    driver
        .extensions(|reply| Request::Create {
            new: Box::new(new),
            reply,
        })
        .map_err(ExtensionError::Driver)?
}

/// `DELETE /api/v1/extensions/{number}`, asked of the driver.
pub fn delete(driver: &DriverHandle, number: &str) -> Result<(), ExtensionError> {
    driver
        .extensions(|reply| Request::Delete {
            number: number.to_owned(),
            reply,
        })
        .map_err(ExtensionError::Driver)?
}

/// One API extension as the driver holds it.
#[derive(Debug, Clone)]
struct ApiExtension {
    stored: StoredExtension,
    /// The endpoint's user, built once.
    user: User,
    /// The file defines its number or auth ID: not in the endpoint's users.
    shadowed: bool,
}

impl ApiExtension {
    fn new(stored: StoredExtension, networks: Vec<IpNet>) -> ApiExtension {
        let mut set = Ha1Set::new();
        for (algorithm, hex) in [
            (Algorithm::Md5, &stored.ha1_md5),
            (Algorithm::Sha256, &stored.ha1_sha256),
            (Algorithm::Sha512_256, &stored.ha1_sha512_256),
        ] {
            let Some(hex) = hex else { continue };
            match set.clone().with(algorithm, hex) {
                Ok(s) => set = s,
                Err(e) => tracing::error!(
                    extension = %stored.number,
                    algorithm = algorithm.as_str(),
                    error = %e,
                    "stored HA1 is damaged; that algorithm cannot authenticate this extension"
                ),
            }
        }
        let user = User {
            number: stored.number.clone(),
            auth_id: stored.auth_id.clone(),
            credential: Credential::Ha1(set),
            networks,
        };
        ApiExtension {
            stored,
            user,
            shadowed: false,
        }
    }
}

/// The driver's record of API extensions and of the file's numbers and auth IDs. See the
/// module documentation.
#[derive(Debug, Default)]
pub struct Directory {
    table: Option<ExtensionTable>,
    settings: FileSettings,
    /// Every API extension by number, shadowed ones included.
    api: BTreeMap<String, ApiExtension>,
    /// The file's extensions as of the last merge: number → auth ID.
    file_numbers: HashMap<String, String>,
    /// auth ID → number.
    file_auth_ids: HashMap<String, String>,
}

impl Directory {
    /// Load the API extensions from `table` and merge them into the endpoint's users
    /// (which must be the file's users only). Returns how many were loaded.
    pub fn attach(
        &mut self,
        table: ExtensionTable,
        endpoint: &mut Endpoint,
    ) -> Result<usize, StoreError> {
        let stored = table.load()?;
        self.api.clear();
        for ext in stored {
            let mut networks = Vec::with_capacity(ext.networks.len());
            for text in &ext.networks {
                match parse_cidr(text) {
                    Ok(net) => networks.push(net),
                    // Validated before it was stored: this is damage, not input.
                    Err(e) => tracing::error!(
                        extension = %ext.number,
                        network = %text,
                        error = %e,
                        "stored network is damaged; ignored"
                    ),
                }
            }
            self.api
                .insert(ext.number.clone(), ApiExtension::new(ext, networks));
        }
        self.table = Some(table);
        let merged = self.merge(endpoint.config().clone());
        endpoint.set_config(merged);
        tracing::info!(
            extensions = self.api.len(),
            "API extensions loaded from the store"
        );
        Ok(self.api.len())
    }

    /// `config` (whose users are the file's extensions) with the API extensions appended,
    /// except those the file shadows (same number or auth ID), which are logged.
    pub fn merge(&mut self, mut config: EndpointConfig) -> EndpointConfig {
        self.file_numbers = config
            .users
            .iter()
            .map(|u| (u.number.clone(), u.auth_id.clone()))
            .collect();
        self.file_auth_ids = config
            .users
            .iter()
            .map(|u| (u.auth_id.clone(), u.number.clone()))
            .collect();
        let realm = config.auth.realm.clone();
        config.users.reserve(self.api.len());
        for ext in self.api.values_mut() {
            let number = &ext.stored.number;
            let auth_id = &ext.stored.auth_id;
            let by_number = self.file_numbers.contains_key(number);
            let by_auth_id = self.file_auth_ids.get(auth_id);
            ext.shadowed = by_number || by_auth_id.is_some();
            if ext.shadowed {
                tracing::warn!(
                    extension = %number,
                    auth_id = %auth_id,
                    file = %self.settings.origin,
                    conflict = if by_number { "number" } else { "auth_id" },
                    "API extension skipped: the configuration file defines the same {}",
                    if by_number { "number" } else { "auth ID" }
                );
                continue;
            }
            if ext.stored.realm != realm {
                tracing::warn!(
                    extension = %number,
                    stored_realm = %ext.stored.realm,
                    realm = %realm,
                    "API extension's credentials were set in another realm: it cannot authenticate until it is created again"
                );
            }
            config.users.push(ext.user.clone());
        }
        config
    }

    /// Answer one request from the admin thread. The caller drains the endpoint afterwards
    /// (a delete unbinds contacts).
    pub fn handle(&mut self, request: Request, endpoint: &mut Endpoint) {
        // A reply nobody waits for any more (the admin side timed out) is dropped.
        match request {
            Request::Settings(settings) => self.settings = *settings,
            Request::List { reply } => {
                let _ = reply.send(self.list(endpoint));
            }
            Request::Create { new, reply } => {
                let _ = reply.send(self.create(*new, endpoint));
            }
            Request::Delete { number, reply } => {
                let _ = reply.send(self.delete(&number, endpoint));
            }
        }
    }

    /// Every extension: the file's in file order, then the API's by number.
    pub fn list(&self, endpoint: &Endpoint) -> Vec<ExtensionView> {
        let mut contacts: HashMap<&str, usize> = HashMap::new();
        for b in endpoint.registrations() {
            *contacts.entry(b.aor.as_str()).or_default() += 1;
        }
        let count = |number: &str| contacts.get(number).copied().unwrap_or(0);
        let realm = &endpoint.config().auth.realm;
        let mut out = Vec::with_capacity(endpoint.config().users.len() + self.api.len());
        for user in &endpoint.config().users {
            if self.is_active_api(&user.number) {
                continue;
            }
            let n = count(&user.number);
            out.push(ExtensionView {
                number: user.number.clone(),
                auth_id: user.auth_id.clone(),
                name: self.settings.names.get(&user.number).cloned(),
                networks: user.networks.iter().map(ToString::to_string).collect(),
                source: Source::Config,
                registered: n > 0,
                contacts: n,
                shadowed: false,
                realm_mismatch: false,
            });
        }
        for ext in self.api.values() {
            // A shadowed one's number may be bound, but by the file's extension.
            let n = if ext.shadowed {
                0
            } else {
                count(&ext.stored.number)
            };
            out.push(api_view(ext, n, realm));
        }
        out
    }

    fn is_active_api(&self, number: &str) -> bool {
        self.api.get(number).is_some_and(|e| !e.shadowed)
    }

    /// Validate, store durably, then add to the endpoint's users.
    pub fn create(
        &mut self,
        new: NewExtension,
        endpoint: &mut Endpoint,
    ) -> Result<Created, ExtensionError> {
        let NewExtension {
            number,
            auth_id,
            password,
            name,
            networks,
        } = new;
        check_extension_number(&number).map_err(|source| ExtensionError::Number {
            value: number.clone(),
            source,
        })?;
        let auth_id = match auth_id {
            None => number.clone(),
            Some(id) => {
                check_auth_id(&id).map_err(|source| ExtensionError::AuthId {
                    value: id.clone(),
                    source,
                })?;
                id
            }
        };
        let min = self.settings.min_password_length;
        let (password, generated) = match password {
            Some(p) => {
                check_password(&p, min, &number, &auth_id).map_err(ExtensionError::Password)?;
                (Secret::new(p), false)
            }
            None => {
                let p = generate_password(min.max(GENERATED_PASSWORD_CHARS))
                    .map_err(ExtensionError::Random)?;
                // 20 random letters and digits equal to a short number or auth ID: only if
                // the auth ID is itself such a string. Checked like a given one anyway.
                check_password(p.expose(), min, &number, &auth_id)
                    .map_err(ExtensionError::Password)?;
                (p, true)
            }
        };
        if name
            .as_deref()
            .is_some_and(|n| n.chars().any(char::is_control))
        {
            return Err(ExtensionError::Name);
        }
        let mut nets: Vec<IpNet> = Vec::with_capacity(networks.len());
        for text in &networks {
            let net = parse_cidr(text).map_err(|source| ExtensionError::Network {
                value: text.clone(),
                source,
            })?;
            if nets.contains(&net) {
                return Err(ExtensionError::DuplicateNetwork {
                    value: net.to_string(),
                });
            }
            nets.push(net);
        }
        self.check_conflicts(&number, &auth_id)?;
        let Some(table) = &self.table else {
            return Err(ExtensionError::NoStore);
        };

        let realm = endpoint.config().auth.realm.clone();
        let ha1 = Ha1Set::from_password(&Algorithm::ALL, &auth_id, &realm, password.expose());
        let stored = StoredExtension {
            number: number.clone(),
            auth_id,
            name,
            networks: nets.iter().map(ToString::to_string).collect(),
            realm: realm.clone(),
            ha1_md5: ha1.get(Algorithm::Md5).map(str::to_owned),
            ha1_sha256: ha1.get(Algorithm::Sha256).map(str::to_owned),
            ha1_sha512_256: ha1.get(Algorithm::Sha512_256).map(str::to_owned),
            created_unix: unix_now(),
        };
        table.put(&stored).map_err(ExtensionError::Store)?;

        let ext = ApiExtension::new(stored, nets);
        let mut config = endpoint.config().clone();
        config.users.push(ext.user.clone());
        endpoint.set_config(config);
        tracing::info!(
            extension = %number,
            auth_id = %ext.stored.auth_id,
            generated_password = generated,
            "extension created through the admin API"
        );
        let view = api_view(&ext, 0, &realm);
        self.api.insert(number, ext);
        Ok(Created {
            extension: view,
            password: generated.then_some(password),
        })
    }

    fn check_conflicts(&self, number: &str, auth_id: &str) -> Result<(), ExtensionError> {
        if self.file_numbers.contains_key(number) {
            return Err(ExtensionError::DefinedInFile {
                number: number.to_owned(),
                origin: self.settings.origin.clone(),
            });
        }
        if self.api.contains_key(number) {
            return Err(ExtensionError::Exists {
                number: number.to_owned(),
            });
        }
        if let Some(other) = self.file_auth_ids.get(auth_id) {
            return Err(ExtensionError::AuthIdTaken {
                auth_id: auth_id.to_owned(),
                number: other.clone(),
                origin: format!("defined in {}", self.settings.origin),
            });
        }
        if let Some(other) = self.api.values().find(|e| e.stored.auth_id == auth_id) {
            return Err(ExtensionError::AuthIdTaken {
                auth_id: auth_id.to_owned(),
                number: other.stored.number.clone(),
                origin: "defined through the API".to_owned(),
            });
        }
        Ok(())
    }

    /// Delete an API extension: durably from the store (with its stored bindings), then
    /// from the endpoint's users, then its bindings. An API extension the file shadows by
    /// number is deleted without touching the bindings, which are the file extension's.
    pub fn delete(&mut self, number: &str, endpoint: &mut Endpoint) -> Result<(), ExtensionError> {
        let Some(ext) = self.api.get(number) else {
            if self.file_numbers.contains_key(number) {
                return Err(ExtensionError::DefinedInFile {
                    number: number.to_owned(),
                    origin: self.settings.origin.clone(),
                });
            }
            return Err(ExtensionError::NotFound {
                number: number.to_owned(),
            });
        };
        let Some(table) = &self.table else {
            return Err(ExtensionError::NoStore);
        };
        let owns_bindings = !self.file_numbers.contains_key(number);
        let was_active = !ext.shadowed;
        table
            .remove(number, owns_bindings)
            .map_err(ExtensionError::Store)?;
        self.api.remove(number);
        if was_active {
            let mut config = endpoint.config().clone();
            config.users.retain(|u| u.number != number);
            endpoint.set_config(config);
        }
        let unbound = if owns_bindings {
            endpoint.unregister_aor(number)
        } else {
            0
        };
        tracing::info!(
            extension = %number,
            contacts_removed = unbound,
            "extension deleted through the admin API"
        );
        Ok(())
    }
}

fn api_view(ext: &ApiExtension, contacts: usize, realm: &str) -> ExtensionView {
    ExtensionView {
        number: ext.stored.number.clone(),
        auth_id: ext.stored.auth_id.clone(),
        name: ext.stored.name.clone(),
        networks: ext.stored.networks.clone(),
        source: Source::Api,
        registered: contacts > 0,
        contacts,
        shadowed: ext.shadowed,
        realm_mismatch: ext.stored.realm != realm,
    }
}

/// Wall-clock seconds for a record's creation time (informational only).
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn file_user(number: &str, auth_id: &str) -> User {
        User {
            number: number.into(),
            auth_id: auth_id.into(),
            credential: Credential::password("file-password-123"),
            networks: Vec::new(),
        }
    }

    /// An endpoint whose users are the file's: 1000 (auth id 1000) and 1001 (auth id bob).
    fn endpoint() -> Endpoint {
        let mut config = EndpointConfig::default();
        config.auth.realm = "voxgate.test".into();
        config.users = vec![file_user("1000", "1000"), file_user("1001", "bob")];
        Endpoint::new(config, 7)
    }

    fn new(number: &str) -> NewExtension {
        NewExtension {
            number: number.into(),
            auth_id: None,
            password: None,
            name: None,
            networks: Vec::new(),
        }
    }

    fn attached(dir: &Path, endpoint: &mut Endpoint) -> (Directory, Store) {
        let store = Store::open(dir).expect("store opens");
        let mut d = Directory {
            settings: FileSettings {
                origin: "/etc/voxgate.toml".into(),
                min_password_length: 12,
                names: HashMap::from([("1001".to_owned(), "Bob".to_owned())]),
            },
            ..Directory::default()
        };
        d.attach(store.extensions(), endpoint).expect("attach");
        (d, store)
    }

    fn numbers(endpoint: &Endpoint) -> Vec<&str> {
        endpoint
            .config()
            .users
            .iter()
            .map(|u| u.number.as_str())
            .collect()
    }

    #[test]
    fn generated_passwords_are_random_letters_and_digits() {
        let a = generate_password(GENERATED_PASSWORD_CHARS).expect("OS RNG");
        let b = generate_password(GENERATED_PASSWORD_CHARS).expect("OS RNG");
        for p in [&a, &b] {
            assert_eq!(p.expose().len(), 20);
            assert!(p.expose().bytes().all(|c| c.is_ascii_alphanumeric()));
        }
        assert_ne!(a.expose(), b.expose());
        assert_eq!(generate_password(33).expect("OS RNG").expose().len(), 33);
        assert_eq!(format!("{a:?}"), "Secret(***)");
        // Over many draws every class of character shows up (a broken mapping would not).
        let many: String = (0..50)
            .map(|_| generate_password(20).expect("OS RNG").expose().to_owned())
            .collect();
        assert!(many.bytes().any(|c| c.is_ascii_uppercase()));
        assert!(many.bytes().any(|c| c.is_ascii_lowercase()));
        assert!(many.bytes().any(|c| c.is_ascii_digit()));
    }

    #[test]
    fn invalid_requests_name_their_field() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ep = endpoint();
        let (mut d, _store) = attached(dir.path(), &mut ep);
        let cases: Vec<(NewExtension, &str)> = vec![
            (new("12a"), "number"),
            (new(""), "number"),
            (new("*12"), "number"),
            (new("112"), "number"),
            (
                NewExtension {
                    auth_id: Some("bad id".into()),
                    ..new("2000")
                },
                "auth_id",
            ),
            (
                NewExtension {
                    password: Some("short".into()),
                    ..new("2000")
                },
                "password",
            ),
            (
                NewExtension {
                    auth_id: Some("alice-long-id".into()),
                    password: Some("alice-long-id".into()),
                    ..new("2000")
                },
                "password",
            ),
            (
                NewExtension {
                    name: Some("Eve\r\nX-Injected: 1".into()),
                    ..new("2000")
                },
                "name",
            ),
            (
                NewExtension {
                    networks: vec!["192.0.2.1/24".into()],
                    ..new("2000")
                },
                "networks",
            ),
            (
                NewExtension {
                    networks: vec!["192.0.2.0/24".into(), "192.0.2.0/24".into()],
                    ..new("2000")
                },
                "networks",
            ),
        ];
        for (request, field) in cases {
            let shown = format!("{request:?}");
            let err = d.create(request, &mut ep).expect_err(&shown);
            assert_eq!(err.status(), 400, "{shown}: {err}");
            assert_eq!(err.field(), Some(field), "{shown}: {err}");
        }
        assert_eq!(numbers(&ep), ["1000", "1001"], "nothing was added");
        assert!(d.list(&ep).iter().all(|v| v.source == Source::Config));
    }

    #[test]
    fn conflicts_with_file_and_api_extensions_are_409() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ep = endpoint();
        let (mut d, _store) = attached(dir.path(), &mut ep);
        let created = d
            .create(
                NewExtension {
                    auth_id: Some("carol".into()),
                    ..new("2000")
                },
                &mut ep,
            )
            .expect("created");
        assert!(created.password.is_some());

        let err = d.create(new("1000"), &mut ep).expect_err("file number");
        assert_eq!((err.status(), err.field()), (409, Some("number")));
        assert_eq!(
            err.to_string(),
            "extension 1000 is defined in /etc/voxgate.toml; remove it there and reload"
        );
        let err = d.create(new("2000"), &mut ep).expect_err("API number");
        assert!(matches!(err, ExtensionError::Exists { .. }), "{err}");
        assert_eq!(err.status(), 409);
        for (auth_id, owner) in [("bob", "1001"), ("carol", "2000"), ("1000", "1000")] {
            let err = d
                .create(
                    NewExtension {
                        auth_id: Some(auth_id.into()),
                        ..new("2001")
                    },
                    &mut ep,
                )
                .expect_err(auth_id);
            assert_eq!((err.status(), err.field()), (409, Some("auth_id")), "{err}");
            assert!(err.to_string().contains(owner), "{err}");
        }
    }

    #[test]
    fn created_extensions_persist_and_yield_to_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ep = endpoint();
        let (mut d, store) = attached(dir.path(), &mut ep);
        let created = d
            .create(
                NewExtension {
                    password: Some("a-given-password-42".into()),
                    name: Some("Carol".into()),
                    networks: vec!["192.0.2.0/24".into()],
                    ..new("2000")
                },
                &mut ep,
            )
            .expect("created");
        assert!(created.password.is_none(), "a given password is not echoed");
        assert_eq!(
            serde_json::to_value(&created.extension).expect("json"),
            serde_json::json!({
                "number": "2000", "auth_id": "2000", "name": "Carol",
                "networks": ["192.0.2.0/24"], "source": "api",
                "registered": false, "contacts": 0,
            })
        );
        assert_eq!(numbers(&ep), ["1000", "1001", "2000"]);
        let user = &ep.config().users[2];
        let Credential::Ha1(set) = &user.credential else {
            panic!("an API extension authenticates by HA1")
        };
        // H("2000:voxgate.test:a-given-password-42"), computed with Python's hashlib.
        assert_eq!(
            set.get(Algorithm::Md5),
            Some("421d2a3879560b1c2a2f1ba0674bdfc7")
        );
        assert_eq!(
            set.get(Algorithm::Sha256),
            Some("8c79ad0e65faf11b4cab6c452a10e1b032d79327ee7e7d3019f5c115e1cc557b")
        );
        assert_eq!(
            set.get(Algorithm::Sha512_256),
            Some("f0b01fa6a39d1834daa39cda9b7304046db824ac3e7bb6713adf8d480b906f3f")
        );
        let listed = d.list(&ep);
        assert_eq!(listed.len(), 3);
        assert_eq!(listed[1].name.as_deref(), Some("Bob"));
        assert_eq!(listed[2].source, Source::Api);
        drop(d);
        drop(store);

        // A restart: the store gives it back.
        let mut ep = endpoint();
        let (mut d, _store) = attached(dir.path(), &mut ep);
        assert_eq!(numbers(&ep), ["1000", "1001", "2000"]);

        // A reload whose file now defines 2000: the file wins.
        let mut config = ep.config().clone();
        config.users = vec![file_user("1000", "1000"), file_user("2000", "2000")];
        let merged = d.merge(config);
        ep.set_config(merged);
        assert_eq!(numbers(&ep), ["1000", "2000"]);
        let listed = d.list(&ep);
        assert_eq!(listed.len(), 3);
        assert_eq!(
            (listed[1].source, listed[1].shadowed),
            (Source::Config, false)
        );
        assert_eq!((listed[2].source, listed[2].shadowed), (Source::Api, true));
        assert_eq!(
            serde_json::to_value(&listed[2]).expect("json")["shadowed"],
            true
        );

        // Deleting the shadowed API record leaves the file's extension alone.
        d.delete("2000", &mut ep).expect("deleted");
        assert_eq!(numbers(&ep), ["1000", "2000"]);
        let err = d.delete("2000", &mut ep).expect_err("now only the file's");
        assert_eq!(err.status(), 409);
        let err = d.delete("3000", &mut ep).expect_err("unknown");
        assert_eq!(err.status(), 404);
    }

    #[test]
    fn delete_removes_the_user_and_the_record() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ep = endpoint();
        let (mut d, store) = attached(dir.path(), &mut ep);
        d.create(new("2000"), &mut ep).expect("created");
        d.create(new("2001"), &mut ep).expect("created");
        d.delete("2000", &mut ep).expect("deleted");
        assert_eq!(numbers(&ep), ["1000", "1001", "2001"]);
        let kept: Vec<String> = store
            .extensions()
            .load()
            .expect("load")
            .into_iter()
            .map(|e| e.number)
            .collect();
        assert_eq!(kept, ["2001"]);
        let err = d.delete("1001", &mut ep).expect_err("file extension");
        assert_eq!((err.status(), err.field()), (409, Some("number")));
        // The number is free again.
        d.create(new("2000"), &mut ep).expect("created again");
    }

    #[test]
    fn without_a_store_nothing_is_created() {
        let mut ep = endpoint();
        let mut d = Directory::default();
        ep.set_config(d.merge(ep.config().clone()));
        let err = d.create(new("2000"), &mut ep).expect_err("no store");
        assert_eq!(err.status(), 503);
        assert_eq!(numbers(&ep), ["1000", "1001"]);
    }

    #[test]
    fn a_raised_minimum_lengthens_generated_passwords() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ep = endpoint();
        let (mut d, _store) = attached(dir.path(), &mut ep);
        d.settings.min_password_length = 32;
        let created = d.create(new("2000"), &mut ep).expect("created");
        let password = created.password.expect("generated");
        assert_eq!(password.expose().len(), 32);
        let err = d
            .create(
                NewExtension {
                    password: Some("twenty-chars-long-pw".into()),
                    ..new("2001")
                },
                &mut ep,
            )
            .expect_err("below the raised minimum");
        assert_eq!(err.field(), Some("password"));
    }

    #[test]
    fn request_bodies_parse_strictly_and_never_show_the_password() {
        let ok: NewExtension = serde_json::from_str(
            r#"{"number":"2000","password":"hunter2hunter2","networks":["10.0.0.0/8"]}"#,
        )
        .expect("parses");
        assert_eq!(ok.networks, ["10.0.0.0/8"]);
        assert!(!format!("{ok:?}").contains("hunter2"));
        assert!(serde_json::from_str::<NewExtension>(r#"{"number":"2000","pin":"1"}"#).is_err());
        assert!(serde_json::from_str::<NewExtension>(r#"{"auth_id":"x"}"#).is_err());
    }
}
