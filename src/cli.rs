//! The small subcommands: `check` (log in and show the account) and
//! `healthcheck` (for Docker's HEALTHCHECK, which has no curl to call).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

use crate::app::{client_config, create_private_dir};
use crate::config::{ServeArgs, Settings};
use crate::error::ErrorKind;
use crate::mediafire::Client;
use crate::remote::Remote;

#[derive(Args, Clone, Debug)]
pub struct CheckArgs {
    /// TOML configuration file (the same one `serve` reads).
    #[arg(long, env = "MEDIAFIRE_DAV_CONFIG")]
    pub config: Option<PathBuf>,
    /// MediaFire root URL [default: https://www.mediafire.com].
    #[arg(long, env = "MEDIAFIRE_API_BASE")]
    pub api_base: Option<String>,
    /// Browser cookie of a logged-in MediaFire session.
    #[arg(long, env = "MEDIAFIRE_COOKIE", hide_env_values = true)]
    pub cookie: Option<String>,
    /// Where the session is kept (shared with `serve`).
    #[arg(long, env = "MEDIAFIRE_DAV_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Logs in and prints who the account is and how full it is.
pub async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let settings = Settings::resolve(&ServeArgs {
        config: args.config,
        api_base: args.api_base,
        cookie: args.cookie,
        state_dir: args.state_dir,
        no_auth: true,
        allow_public_no_auth: true,
        ..ServeArgs::default()
    })?;
    create_private_dir(&settings.state_dir)?;
    let client = Client::new(client_config(&settings))
        .await
        .map_err(|e| anyhow::anyhow!("mediafire: {e}"))?;
    let account = match client.login().await {
        Ok(()) => client.account().await,
        Err(e) => Err(e),
    };
    match account {
        Ok(a) => {
            println!("account:  {} <{}>", a.display_name, a.email);
            println!("premium:  {}", if a.premium { "yes" } else { "no" });
            match a.quota.limit {
                Some(limit) => println!(
                    "storage:  {} used of {} ({:.1}%)",
                    human(a.quota.used),
                    human(limit),
                    100.0 * a.quota.used as f64 / limit.max(1) as f64
                ),
                None => println!("storage:  {} used", human(a.quota.used)),
            }
            println!("session:  saved in {}", settings.state_dir.display());
            Ok(())
        }
        Err(e) if e.kind() == ErrorKind::Auth => bail!(
            "MediaFire refused the credentials: {e}\n(copy a fresh cookie from a logged-in \
             browser into --cookie or MEDIAFIRE_COOKIE)"
        ),
        Err(e) => bail!("could not reach MediaFire: {e}"),
    }
}

#[derive(Args, Clone, Debug)]
pub struct HealthcheckArgs {
    /// The health URL to probe [default: /healthz on the --listen address].
    #[arg(long, env = "MEDIAFIRE_DAV_HEALTH_URL")]
    pub url: Option<String>,
    /// The address `serve` listens on; read from the same variable, so a
    /// container that moves the port needs no second setting.
    #[arg(long, env = "MEDIAFIRE_DAV_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

/// `http://ADDR/healthz` for the address `serve` listens on; a wildcard
/// address is probed on loopback.
fn health_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

/// Exits successfully when the server answers its health check with 200
/// within five seconds.
pub async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let url = args.url.unwrap_or_else(|| health_url(args.listen));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let resp = client.get(&url).send().await?;
    if !resp.status().is_success() {
        bail!("{url} answered {}", resp.status());
    }
    Ok(())
}

/// 1536 → "1.5 KiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn health_url_follows_the_listen_address() {
        let url = |a: &str| super::health_url(a.parse().unwrap());
        assert_eq!(url("0.0.0.0:9000"), "http://127.0.0.1:9000/healthz");
        assert_eq!(url("[::]:8080"), "http://[::1]:8080/healthz");
        assert_eq!(url("192.0.2.7:81"), "http://192.0.2.7:81/healthz");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(super::human(0), "0 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(10 * 1024 * 1024 * 1024), "10.0 GiB");
    }
}
