//! One validated [`Config`] from flags and environment. Every refusal says what to set.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::time::Duration;

use secrecy::SecretString;

use crate::crypto::{KeyError, MasterKey, MasterKeys};
use crate::domain::TrustedProxies;
use crate::store::PoolSettings;
use crate::verify::VerifySettings;

/// Where `--dev` keeps what it creates, relative to the working directory (git-ignored).
pub const DEV_DIR: &str = ".credvault";
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:50051";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8005";
pub const DEFAULT_DATABASE_URL: &str = "sqlite://.credvault/credvault.db";

pub use crate::telemetry::LogFormat;

/// `credvault serve` flags; each has an environment variable of the same meaning.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// gRPC listen address (host:port).
    #[arg(long, env = "CREDVAULT_GRPC_ADDR", default_value = DEFAULT_GRPC_ADDR)]
    pub grpc_addr: String,
    /// REST gateway (dashboard) listen address (host:port).
    #[arg(long, env = "CREDVAULT_HTTP_ADDR", default_value = DEFAULT_HTTP_ADDR)]
    pub http_addr: String,
    /// The dashboard's origin (scheme://host[:port]) that browsers may call the REST gateway
    /// from (CORS); unset, no cross-origin browser calls are allowed.
    #[arg(long, env = "CREDVAULT_DASHBOARD_ORIGIN")]
    pub dashboard_origin: Option<String>,
    /// PEM certificate chain for TLS on the gRPC listener (with --tls-key); plaintext without.
    #[arg(long, env = "CREDVAULT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "CREDVAULT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): require clients to present a certificate signed by one (mutual TLS).
    #[arg(long, env = "CREDVAULT_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,
    /// Comma-separated addresses or CIDR networks of proxies whose X-Forwarded-For is believed
    /// for the audit log's ip_address (e.g. 10.0.0.0/8); unset, the peer address is recorded.
    #[arg(long, env = "CREDVAULT_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
    /// Database URL: sqlite://path/to/file.db or postgres://user:password@host:port/db
    #[arg(long, env = "CREDVAULT_DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,
    /// File holding the base64 master key (instead of CREDENTIAL_ENCRYPTION_KEY, which is read
    /// from the environment only: a key on the command line would show in `ps`). While keys
    /// rotate, either holds `VERSION:KEY` entries, one per line (see `credvault key rotate`).
    #[arg(long, env = "CREDVAULT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Development mode: create a key file and the database on first run, add the demo
    /// customer, and print ready-to-paste grpcurl commands.
    #[arg(long)]
    pub dev: bool,
    /// Log format.
    #[arg(long, env = "CREDVAULT_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Seconds a checked token is trusted before it is read again: the bound within which a
    /// revocation (from the CLI or another instance) takes effect. 0 reads it on every call.
    #[arg(long, env = "CREDVAULT_TOKEN_CACHE_SECS", default_value_t = crate::auth::DEFAULT_CACHE_TTL.as_secs_f64())]
    pub token_cache_secs: f64,
    /// Seconds between sealings of new audit rows onto the tamper-evident chain: the window in
    /// which a new row is protected by its own MAC only.
    #[arg(long, env = "CREDVAULT_AUDIT_SEAL_SECS", default_value_t = crate::vault::CHAIN_INTERVAL.as_secs_f64())]
    pub audit_seal_secs: f64,
    /// Seconds between the purger's passes, which destroy the versions of deleted credentials
    /// whose recovery window has ended (every instance runs one; each credential is purged once).
    #[arg(long, env = "CREDVAULT_PURGE_INTERVAL_SECS", default_value_t = 60.0)]
    pub purge_interval_secs: f64,
    /// After `credvault key rotate`, at most this many keys rewrapped per second (0: as fast as
    /// a twentieth of the time allows; the rewrap pauses 19 times as long as each batch took).
    #[arg(long, env = "CREDVAULT_REWRAP_RATE", default_value_t = 0)]
    pub rewrap_rate: u32,
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(flatten)]
    pub verify: VerifyArgs,
    #[command(flatten)]
    pub verification: VerificationArgs,
}

/// Where the providers' APIs are (tests, sovereign clouds, private endpoints) and how long to
/// wait for them.
#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Base URL of the Vultr API (verification calls `/v2/account` under it).
    #[arg(long, env = "CREDVAULT_VULTR_API_URL", default_value_t = VerifySettings::default().vultr_api_url)]
    pub vultr_api_url: String,
    /// AWS STS endpoint that GetCallerIdentity is sent to.
    #[arg(long, env = "CREDVAULT_AWS_STS_URL", default_value_t = VerifySettings::default().aws_sts_url)]
    pub aws_sts_url: String,
    /// The region STS requests are signed for.
    #[arg(long, env = "CREDVAULT_AWS_REGION", default_value_t = VerifySettings::default().aws_region)]
    pub aws_region: String,
    /// Google's OAuth 2.0 token endpoint that service-account JWTs are exchanged at.
    #[arg(long, env = "CREDVAULT_GCP_TOKEN_URL", default_value_t = VerifySettings::default().gcp_token_url)]
    pub gcp_token_url: String,
    /// Microsoft identity platform base URL (the tenant's `/oauth2/v2.0/token` under it).
    #[arg(long, env = "CREDVAULT_AZURE_LOGIN_URL", default_value_t = VerifySettings::default().azure_login_url)]
    pub azure_login_url: String,
    /// Azure Resource Manager base URL (a subscription is read under it).
    #[arg(long, env = "CREDVAULT_AZURE_MANAGEMENT_URL", default_value_t = VerifySettings::default().azure_management_url)]
    pub azure_management_url: String,
    /// Seconds one verification may take, retries included.
    #[arg(long, env = "CREDVAULT_VERIFY_TIMEOUT_SECS", default_value_t = VerifySettings::default().timeout.as_secs_f64())]
    pub verify_timeout_secs: f64,
    /// Extra attempts after a transient provider failure (timeout, 5xx, 429).
    #[arg(long, env = "CREDVAULT_VERIFY_RETRIES", default_value_t = VerifySettings::default().retries)]
    pub verify_retries: u32,
}

impl Default for VerifyArgs {
    fn default() -> Self {
        let d = VerifySettings::default();
        Self {
            vultr_api_url: d.vultr_api_url,
            aws_sts_url: d.aws_sts_url,
            aws_region: d.aws_region,
            gcp_token_url: d.gcp_token_url,
            azure_login_url: d.azure_login_url,
            azure_management_url: d.azure_management_url,
            verify_timeout_secs: d.timeout.as_secs_f64(),
            verify_retries: d.retries,
        }
    }
}

impl VerifyArgs {
    pub fn validate(self) -> Result<VerifySettings, ConfigError> {
        for (name, url) in [
            ("CREDVAULT_VULTR_API_URL", &self.vultr_api_url),
            ("CREDVAULT_AWS_STS_URL", &self.aws_sts_url),
            ("CREDVAULT_GCP_TOKEN_URL", &self.gcp_token_url),
            ("CREDVAULT_AZURE_LOGIN_URL", &self.azure_login_url),
            ("CREDVAULT_AZURE_MANAGEMENT_URL", &self.azure_management_url),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://"))
                || url.contains(char::is_whitespace)
            {
                return Err(ConfigError(format!("{name} must be an http(s):// URL, got {url:?}")));
            }
        }
        if self.verify_retries > 10 {
            return Err(ConfigError("CREDVAULT_VERIFY_RETRIES / --verify-retries must be 0 to 10".into()));
        }
        let t = self.verify_timeout_secs;
        if !(t.is_finite() && (0.1..=300.0).contains(&t)) {
            return Err(ConfigError(
                "CREDVAULT_VERIFY_TIMEOUT_SECS / --verify-timeout-secs must be 0.1 to 300".into(),
            ));
        }
        Ok(VerifySettings {
            vultr_api_url: self.vultr_api_url,
            aws_sts_url: self.aws_sts_url,
            aws_region: self.aws_region,
            gcp_token_url: self.gcp_token_url,
            azure_login_url: self.azure_login_url,
            azure_management_url: self.azure_management_url,
            timeout: Duration::from_secs_f64(t),
            retries: self.verify_retries,
        })
    }
}

/// Database pool flags (PostgreSQL).
#[derive(Debug, Clone, clap::Args)]
pub struct PoolArgs {
    /// Most database connections this instance opens (PostgreSQL).
    #[arg(long, env = "CREDVAULT_DB_MAX_CONNECTIONS", default_value_t = PoolSettings::default().max_connections)]
    pub db_max_connections: u32,
    /// Seconds a call waits to get a database connection before failing with UNAVAILABLE.
    #[arg(long, env = "CREDVAULT_DB_CONNECT_TIMEOUT_SECS", default_value_t = PoolSettings::default().connect_timeout.as_secs_f64())]
    pub db_connect_timeout_secs: f64,
    /// Seconds one SQL statement may run before PostgreSQL cancels it.
    #[arg(long, env = "CREDVAULT_DB_STATEMENT_TIMEOUT_SECS", default_value_t = PoolSettings::default().statement_timeout.as_secs_f64())]
    pub db_statement_timeout_secs: f64,
}

impl Default for PoolArgs {
    fn default() -> Self {
        let d = PoolSettings::default();
        Self {
            db_max_connections: d.max_connections,
            db_connect_timeout_secs: d.connect_timeout.as_secs_f64(),
            db_statement_timeout_secs: d.statement_timeout.as_secs_f64(),
        }
    }
}

impl PoolArgs {
    fn validate(&self) -> Result<PoolSettings, ConfigError> {
        if !(1..=1000).contains(&self.db_max_connections) {
            return Err(ConfigError(
                "CREDVAULT_DB_MAX_CONNECTIONS / --db-max-connections must be 1 to 1000".into(),
            ));
        }
        let seconds = |value: f64, name: &str| {
            if value.is_finite() && (0.05..=3600.0).contains(&value) {
                Ok(Duration::from_secs_f64(value))
            } else {
                Err(ConfigError(format!("{name} must be a number of seconds from 0.05 to 3600")))
            }
        };
        Ok(PoolSettings {
            max_connections: self.db_max_connections,
            connect_timeout: seconds(
                self.db_connect_timeout_secs,
                "CREDVAULT_DB_CONNECT_TIMEOUT_SECS / --db-connect-timeout-secs",
            )?,
            statement_timeout: seconds(
                self.db_statement_timeout_secs,
                "CREDVAULT_DB_STATEMENT_TIMEOUT_SECS / --db-statement-timeout-secs",
            )?,
        })
    }
}

/// Where the master key comes from.
pub enum KeySource {
    /// The value of `CREDENTIAL_ENCRYPTION_KEY` (or given directly, in tests).
    Inline(SecretString),
    /// A file holding the base64 key.
    File(PathBuf),
    /// `--dev` without a key: this file, created with a new random key if missing.
    DevFile(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Inline(_) => f.write_str("Inline([redacted])"),
            KeySource::File(p) => f.debug_tuple("File").field(p).finish(),
            KeySource::DevFile(p) => f.debug_tuple("DevFile").field(p).finish(),
        }
    }
}

/// A database URL; `Debug` and `Display` hide any password in it.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        if ["sqlite:", "postgres://", "postgresql://"].iter().any(|scheme| url.starts_with(scheme)) {
            Ok(Self(url.to_owned()))
        } else {
            Err(ConfigError(format!(
                "CREDVAULT_DATABASE_URL / --database-url must be a sqlite: URL (e.g. {DEFAULT_DATABASE_URL}) \
                 or a postgres:// URL (e.g. postgres://credvault@db.internal:5432/credvault); got scheme {:?}",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // user:password@host -> user:***@host
        match (self.0.find("://"), self.0.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                let userinfo = &self.0[scheme_end + 3..at];
                let user = userinfo.split(':').next().unwrap_or_default();
                write!(f, "{}{user}:***{}", &self.0[..scheme_end + 3], &self.0[at..])
            }
            _ => f.write_str(&self.0),
        }
    }
}

/// A configuration problem, worded as what to change.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn socket_addr(value: &str, name: &str, example: &str) -> Result<SocketAddr, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError(format!("{name} {value:?} is not an address like {example} (IP:port)")))
}

/// A browser origin: `scheme://host[:port]`, nothing after it.
fn origin(value: &str) -> Result<http::HeaderValue, ConfigError> {
    let refuse = || {
        ConfigError(format!(
            "CREDVAULT_DASHBOARD_ORIGIN / --dashboard-origin {value:?} is not an origin like \
             https://dashboard.example.com or http://localhost:3000 (scheme, host and port only)"
        ))
    };
    let uri: http::Uri = value.parse().map_err(|_| refuse())?;
    let plain = matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
        && uri.path_and_query().is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
    if !plain {
        return Err(refuse());
    }
    http::HeaderValue::try_from(value.trim_end_matches('/')).map_err(|_| refuse())
}

/// Where the gRPC listener's TLS material is.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set for mutual TLS.
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn from_args(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
    ) -> Result<Option<Self>, ConfigError> {
        match (cert, key, client_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), client_ca) => Ok(Some(Self { cert, key, client_ca })),
            (_, _, Some(_)) => Err(ConfigError(
                "CREDVAULT_TLS_CLIENT_CA / --tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS first)".into(),
            )),
            _ => Err(ConfigError(
                "set both CREDVAULT_TLS_CERT / --tls-cert and CREDVAULT_TLS_KEY / --tls-key, or neither".into(),
            )),
        }
    }

    /// Reads the files.
    pub fn read(&self) -> Result<TlsPem, ConfigError> {
        let read = |path: &Path, what: &str| {
            std::fs::read(path)
                .map_err(|e| ConfigError(format!("cannot read the TLS {what} {}: {e}", path.display())))
        };
        let cert = read(&self.cert, "certificate")?;
        let key = zeroize::Zeroizing::new(read(&self.key, "key")?);
        let client_ca = self.client_ca.as_deref().map(|p| read(p, "client CA")).transpose()?;
        for (pem, what, path) in [(&cert, "certificate", &self.cert), (&*key, "key", &self.key)] {
            if !pem.starts_with(b"-----BEGIN") && !String::from_utf8_lossy(pem).contains("-----BEGIN") {
                return Err(ConfigError(format!("the TLS {what} {} is not PEM", path.display())));
            }
        }
        Ok(TlsPem { cert, key, client_ca })
    }
}

/// The TLS files' contents; the key is wiped when dropped.
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: zeroize::Zeroizing<Vec<u8>>,
    pub client_ca: Option<Vec<u8>>,
}

/// The server's validated configuration.
#[derive(Debug)]
pub struct Config {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub dashboard_origin: Option<http::HeaderValue>,
    pub database_url: DatabaseUrl,
    pub key: KeySource,
    pub dev: bool,
    pub log_format: LogFormat,
    pub tls: Option<TlsFiles>,
    pub trusted_proxies: TrustedProxies,
    pub token_cache_ttl: Duration,
    pub audit_chain_interval: Duration,
    pub purge_interval: Duration,
    /// Data keys rewrapped per second at most; `None`: no limit beyond the rewrap's own pause.
    pub rewrap_rate: Option<std::num::NonZeroU32>,
    pub pool: PoolSettings,
    pub verify: VerifySettings,
    /// How verification answers are judged.
    pub verification: crate::vault::VerificationPolicy,
    /// How the scheduled re-verification paces itself.
    pub reverify: crate::jobs::ReverifySettings,
}

impl Config {
    /// Validates the flags. `env_key` is the value of `CREDENTIAL_ENCRYPTION_KEY`, if set.
    pub fn from_args(args: ServeArgs, env_key: Option<SecretString>) -> Result<Self, ConfigError> {
        let (verification, reverify) = args.verification.validate()?;
        let grpc_addr = socket_addr(&args.grpc_addr, "CREDVAULT_GRPC_ADDR / --grpc-addr", DEFAULT_GRPC_ADDR)?;
        let http_addr = socket_addr(&args.http_addr, "CREDVAULT_HTTP_ADDR / --http-addr", DEFAULT_HTTP_ADDR)?;
        let dashboard_origin = args.dashboard_origin.as_deref().map(origin).transpose()?;
        let dev_key = args.dev.then(|| KeySource::DevFile(dev_key_path()));
        let key = KeySource::choose(env_key, args.key_file, dev_key)?.ok_or_else(|| {
            ConfigError(
                "no encryption key: set CREDENTIAL_ENCRYPTION_KEY to the output of `credvault keygen`, \
                 or point CREDVAULT_KEY_FILE / --key-file at a file holding it; \
                 to try credvault locally, run `credvault serve --dev`"
                    .into(),
            )
        })?;
        Ok(Self {
            grpc_addr,
            http_addr,
            dashboard_origin,
            database_url: DatabaseUrl::parse(&args.database_url)?,
            key,
            dev: args.dev,
            log_format: args.log_format,
            tls: TlsFiles::from_args(args.tls_cert, args.tls_key, args.tls_client_ca)?,
            trusted_proxies: TrustedProxies::parse(
                args.trusted_proxies.as_deref().unwrap_or_default(),
                "CREDVAULT_TRUSTED_PROXIES / --trusted-proxies",
            )
            .map_err(|v| ConfigError(v.to_string()))?,
            token_cache_ttl: match args.token_cache_secs {
                t if t.is_finite() && (0.0..=300.0).contains(&t) => Duration::from_secs_f64(t),
                _ => {
                    return Err(ConfigError(
                        "CREDVAULT_TOKEN_CACHE_SECS / --token-cache-secs must be 0 to 300".into(),
                    ));
                }
            },
            audit_chain_interval: match args.audit_seal_secs {
                t if t.is_finite() && (0.05..=3600.0).contains(&t) => Duration::from_secs_f64(t),
                _ => {
                    return Err(ConfigError(
                        "CREDVAULT_AUDIT_SEAL_SECS / --audit-seal-secs must be 0.05 to 3600".into(),
                    ));
                }
            },
            purge_interval: match args.purge_interval_secs {
                t if t.is_finite() && (0.05..=86400.0).contains(&t) => Duration::from_secs_f64(t),
                _ => {
                    return Err(ConfigError(
                        "CREDVAULT_PURGE_INTERVAL_SECS / --purge-interval-secs must be 0.05 to 86400".into(),
                    ));
                }
            },
            rewrap_rate: std::num::NonZeroU32::new(args.rewrap_rate),
            pool: args.pool.validate()?,
            verify: args.verify.validate()?,
            verification,
            reverify,
        })
    }

    /// Reads the master key's versions, creating the dev key file if this is its first run.
    pub fn master_keys(&self) -> Result<MasterKeys, ConfigError> {
        self.key.load()
    }
}

/// `serve --dev`'s key file.
fn dev_key_path() -> PathBuf {
    Path::new(DEV_DIR).join("dev.key")
}

impl KeySource {
    /// The one source given: `CREDENTIAL_ENCRYPTION_KEY` (`env_key`) or `key_file`, never both;
    /// with neither, `fallback`.
    fn choose(
        env_key: Option<SecretString>,
        key_file: Option<PathBuf>,
        fallback: Option<KeySource>,
    ) -> Result<Option<Self>, ConfigError> {
        match (env_key, key_file) {
            (Some(_), Some(_)) => Err(ConfigError(
                "both CREDENTIAL_ENCRYPTION_KEY and CREDVAULT_KEY_FILE / --key-file are set; set only one"
                    .into(),
            )),
            (Some(key), None) => Ok(Some(KeySource::Inline(key))),
            (None, Some(path)) => Ok(Some(KeySource::File(path))),
            (None, None) => Ok(fallback),
        }
    }

    /// Reads the key's versions, creating the dev key file on its first run.
    fn load(&self) -> Result<MasterKeys, ConfigError> {
        match self {
            KeySource::Inline(encoded) => MasterKeys::parse(encoded)
                .map_err(|e: KeyError| ConfigError(format!("CREDENTIAL_ENCRYPTION_KEY: {e}"))),
            KeySource::File(path) => read_key_file(path),
            KeySource::DevFile(path) => {
                if !path.exists() {
                    write_new_key_file(path)?;
                }
                read_key_file(path)
            }
        }
    }
}

/// Where CLI commands other than `serve` find the master key: `CREDENTIAL_ENCRYPTION_KEY`, or
/// `key_file`; without either, on `serve --dev`'s database (the default URL), the dev key
/// beside it, so that the commands the README shows next to `serve --dev` work. `None`: none.
fn cli_key_source(key_file: Option<&Path>, database_url: &str) -> Result<Option<KeySource>, ConfigError> {
    let env_key = std::env::var("CREDENTIAL_ENCRYPTION_KEY").ok().map(SecretString::from);
    let dev_key = dev_key_path();
    let beside_dev =
        (database_url == DEFAULT_DATABASE_URL && dev_key.exists()).then_some(KeySource::File(dev_key));
    KeySource::choose(env_key, key_file.map(Path::to_path_buf), beside_dev)
}

/// Whether [`load_master_keys`] has a key to read (it may still refuse it).
pub fn master_key_configured(key_file: Option<&Path>, database_url: &str) -> bool {
    !matches!(cli_key_source(key_file, database_url), Ok(None))
}

/// The master key's versions for CLI commands that need them (see [`cli_key_source`]).
pub fn load_master_keys(key_file: Option<&Path>, database_url: &str) -> Result<MasterKeys, ConfigError> {
    let source = cli_key_source(key_file, database_url)?.ok_or_else(|| {
        ConfigError(
            "this command needs the master key (audit rows are signed with a key derived from it): \
             set CREDENTIAL_ENCRYPTION_KEY or CREDVAULT_KEY_FILE / --key-file (next to `serve --dev`, \
             its .credvault/dev.key is found by itself)"
                .into(),
        )
    })?;
    source.load()
}

fn read_key_file(path: &Path) -> Result<MasterKeys, ConfigError> {
    refuse_shared_key_file(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!(
            "cannot read the key file {}: {e}; create one with `credvault keygen > FILE`",
            path.display()
        ))
    })?;
    MasterKeys::parse(&SecretString::from(text))
        .map_err(|e| ConfigError(format!("key file {}: {e}", path.display())))
}

/// A key file other users can read is a leaked key: refused, as ssh refuses such a private key.
#[cfg(unix)]
fn refuse_shared_key_file(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt as _;
    // A missing file is reported by the read that follows, with the fix for that.
    let Ok(metadata) = std::fs::metadata(path) else { return Ok(()) };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError(format!(
            "the key file {path} is readable by other users (mode {mode:04o}); credvault will not use a key \
             others may have read. Run `chmod 600 {path}` (and consider the key exposed if others did read it)",
            path = path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_shared_key_file(_path: &Path) -> Result<(), ConfigError> {
    Ok(())
}

fn write_new_key_file(path: &Path) -> Result<(), ConfigError> {
    use secrecy::ExposeSecret as _;
    let key = MasterKey::generate().to_base64();
    crate::private_files::write_private_file(path, key.expose_secret())
        .map_err(|e| ConfigError(format!("cannot create the dev key file {}: {e}", path.display())))?;
    tracing::warn!(path = %path.display(), "created a development key file; do not use it in production");
    Ok(())
}

/// Creates `--dev`'s directory (0700) with a `.gitignore` that ignores everything in it, so
/// that running `serve --dev` inside any repository cannot get the dev key committed.
pub fn prepare_dev_dir(dir: &Path) -> Result<(), ConfigError> {
    let refuse = |e: std::io::Error| ConfigError(format!("cannot prepare {}: {e}", dir.display()));
    crate::private_files::create_private_dir(dir).map_err(refuse)?;
    let ignore = dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "# Created by `credvault serve --dev`: keys and data, never to commit.\n*\n")
            .map_err(refuse)?;
    }
    Ok(())
}

/// A duration like `90d`, `12h`, `30m` or `45s`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let refuse = || format!("{value:?} is not a duration like 90d, 12h, 30m or 45s");
    let split = value.len().checked_sub(1).ok_or_else(refuse)?;
    let (number, unit) = value.split_at(split);
    let number: u64 = number.parse().map_err(|_| refuse())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(refuse()),
    };
    number.checked_mul(seconds).filter(|s| *s > 0).map(Duration::from_secs).ok_or_else(refuse)
}

#[cfg(test)]
mod tests;
mod verification;

pub use verification::VerificationArgs;
