//! Prints the platform, version, attributes and devices of a PJRT plugin.
//!
//! ```sh
//! cargo run --example devices -- cpu          # the default CPU plugin
//! cargo run --example devices -- cuda         # where a GPU plugin is installed
//! cargo run --example devices -- /path/to/pjrt_plugin.so
//! ```
//!
//! CPU clients get 4 virtual devices (`cpu_device_count`); other platforms
//! use the plugin's defaults.

use axle_runtime::{Client, CreateOption, Plugin};

fn main() {
    let target = std::env::args().nth(1).unwrap_or_else(|| "cpu".to_string());
    if let Err(e) = run(&target) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(target: &str) -> Result<(), axle_runtime::Error> {
    let plugin = Plugin::load(target)?;
    let (major, minor) = plugin.api_version();
    println!("plugin:   {}", plugin.path().display());
    println!("PJRT API: {major}.{minor}");
    for (name, value) in plugin.attributes()? {
        println!("  {name} = {value:?}");
    }
    let options = if target == "cpu" {
        vec![CreateOption::int("cpu_device_count", 4)]
    } else {
        Vec::new()
    };
    let client = Client::new(plugin, &options)?;
    println!("platform: {}", client.platform_name()?);
    println!("version:  {}", client.platform_version()?);
    for device in client.devices()? {
        println!(
            "  device {:>2}: {} kind={} process={}{}",
            device.id,
            device.description,
            device.kind,
            device.process_index,
            if device.addressable {
                ""
            } else {
                " (not addressable)"
            }
        );
    }
    Ok(())
}
