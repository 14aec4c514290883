//! The small subcommands: `check` (log in and show the account) and
//! `healthcheck` (for Docker's HEALTHCHECK, which has no curl to call).

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
    /// The health URL to probe.
    #[arg(
        long,
        env = "MEDIAFIRE_DAV_HEALTH_URL",
        default_value = "http://127.0.0.1:8080/healthz"
    )]
    pub url: String,
}

/// Exits successfully when `url` answers 200 within five seconds.
pub async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let resp = client.get(&args.url).send().await?;
    if !resp.status().is_success() {
        bail!("{} answered {}", args.url, resp.status());
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
    fn human_sizes() {
        assert_eq!(super::human(0), "0 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(10 * 1024 * 1024 * 1024), "10.0 GiB");
    }
}
