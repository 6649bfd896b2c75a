//! A driver host: registers the driver modules (`type=driver`) of a directory without loading
//! them, opens the devices named on the command line — a driver's first open loads it — closes
//! them, and watches the auto-unloader take each idle driver away after its `unload_delay`.
//!
//! `cargo run -p dlkm-loader --example driver_host -- DIR NAME:MINOR...`, for example
//!
//! ```sh
//! cargo run -p dlkm-loader --example driver_host -- corpus/x86_64/gcc-pie/lifecycle lc_drv:3 lc_drv:7
//! ```
//!
//! `DIR` is also the module path, where a driver's dependencies are found. `lc_drv:7` fails:
//! `drv_open` refuses minor 7 (ENXIO). `lc_user` fails to load: it asks for interface
//! `dlkm_test=2`, which this host does not provide. A failed open is an `error:` line; the others
//! go on, and the exit status is 1.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dlkm_loader::{Kernel, ModuleInfo, ModuleState};

/// The unload delay of a driver whose metadata gives none (the kernel's default is a minute).
const DEFAULT_DELAY: Duration = Duration::from_secs(2);
/// How long to watch for the auto-unloader before giving up.
const WAIT: Duration = Duration::from_secs(10);
/// How often the auto-unloader looks for idle modules.
const TICK: Duration = Duration::from_millis(100);

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// Minor device `minor` of driver `driver`, written `driver:minor`.
struct Device {
    driver: String,
    minor: u64,
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (driver, minor) = s
            .split_once(':')
            .ok_or(format!("{s}: expected NAME:MINOR"))?;
        let minor = minor.parse().map_err(|e| format!("{s}: bad minor: {e}"))?;
        let driver = driver.to_string();
        Ok(Device { driver, minor })
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.driver, self.minor)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match host(&args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(failed) => {
            eprintln!("error: {failed} device(s) failed to open");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `DIR NAME:MINOR...` and runs the host in a native kernel.
fn host(args: &[String]) -> Result<usize> {
    let Some((dir, devices)) = args.split_first().filter(|(_, d)| !d.is_empty()) else {
        return Err("usage: driver_host DIR NAME:MINOR...".into());
    };
    let devices: Vec<Device> = devices
        .iter()
        .map(|d| d.parse())
        .collect::<std::result::Result<_, _>>()?;
    run(&Arc::new(Kernel::native()?), dir.as_ref(), &devices)
}

/// Registers the drivers of `dir`, opens and closes `devices`, and waits for the drivers the
/// opens loaded to be unloaded again. Returns how many devices failed to open.
fn run(kernel: &Arc<Kernel>, dir: &Path, devices: &[Device]) -> Result<usize> {
    kernel.add_modpath(dir)?;
    let drivers = register_drivers(kernel, dir)?;
    println!(
        "registered {} driver(s): {}",
        drivers.len(),
        drivers.join(", ")
    );
    show(kernel);
    Kernel::start_auto_unload(kernel, Some(DEFAULT_DELAY), TICK);
    let mut opened = Vec::new();
    for device in devices {
        match open(kernel, &drivers, device) {
            Ok(count) => {
                println!("open {device}: ok, {count} open");
                opened.push(device);
            }
            Err(e) => eprintln!("error: open {device}: {e}"),
        }
    }
    show(kernel);
    for device in &opened {
        let count = kernel.close(&device.driver, device.minor)?;
        println!("close {device}: ok, {count} open");
    }
    let loaded = |k: &Kernel| k.modules().iter().any(is_loaded);
    if loaded(kernel) {
        let started = Instant::now();
        while loaded(kernel) && started.elapsed() < WAIT {
            std::thread::sleep(TICK);
        }
        if loaded(kernel) {
            println!("drivers still loaded after {WAIT:?}");
        } else {
            println!("idle drivers auto-unloaded after {:.1?}", started.elapsed());
        }
    }
    show(kernel);
    Ok(devices.len() - opened.len())
}

/// Registers every `*.o` in `dir` whose metadata says `type=driver`, in file name order, and
/// returns their module names. Registering reads the metadata without loading anything; the
/// other modules are unregistered again, and those the kernel refuses are skipped.
fn register_drivers(kernel: &Arc<Kernel>, dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut objects: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "o"))
        .collect();
    objects.sort();
    let mut drivers = Vec::new();
    for path in objects {
        // A module the kernel refuses (bad metadata, a symbol it may not define) is no
        // reason to refuse the others.
        let id = match kernel.register(&path) {
            Ok(id) => id,
            Err(e) => {
                eprintln!("skipped {}: {e}", path.display());
                continue;
            }
        };
        let info = kernel.module_info(id).ok_or("registered module vanished")?;
        if info.module_type == "driver" {
            drivers.push(info.name);
        } else {
            kernel.unregister(&info.name)?;
        }
    }
    Ok(drivers)
}

/// Opens a device of one of `drivers` (not of any module on the module path); returns the
/// driver's open count.
fn open(kernel: &Kernel, drivers: &[String], device: &Device) -> Result<usize> {
    if !drivers.contains(&device.driver) {
        return Err(format!("{} is not a registered driver", device.driver).into());
    }
    Ok(kernel.open(&device.driver, device.minor)?)
}

fn is_loaded(module: &ModuleInfo) -> bool {
    !matches!(module.state, ModuleState::Registered | ModuleState::Failed)
}

/// Prints the module table, one row a module.
fn show(kernel: &Kernel) {
    for m in kernel.modules() {
        let mut row = format!(
            "  {:>3} {:<10} {:<7} {:<10}",
            m.id, m.name, m.module_type, m.state
        );
        if is_loaded(&m) {
            row += &format!(" at {:#x}, {} open", m.base, m.opens);
        }
        if m.auto_loaded {
            row += ", auto-loaded";
        }
        if let Some(failure) = &m.failure {
            row += &format!(" ({failure})");
        }
        println!("{row}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dlkm_loader::LoadError;

    /// The corpus's life-cycle modules built for this host, if it has them.
    fn lifecycle() -> Option<PathBuf> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../corpus")
            .join(std::env::consts::ARCH)
            .join("gcc-pie/lifecycle");
        dir.is_dir().then_some(dir)
    }

    fn module(kernel: &Kernel, name: &str) -> ModuleInfo {
        let modules = kernel.modules();
        modules.into_iter().find(|m| m.name == name).expect(name)
    }

    #[test]
    fn open_loads_the_driver_and_the_idle_driver_is_unloaded() {
        let Some(dir) = lifecycle() else { return };
        let kernel = Arc::new(Kernel::native().unwrap());
        kernel.add_modpath(&dir).unwrap();
        let drivers = register_drivers(&kernel, &dir).unwrap();
        assert_eq!(drivers, ["lc_drv", "lc_user"]);
        assert!(kernel.modules().iter().all(|m| m.module_type == "driver"));
        let drv = module(&kernel, "lc_drv");
        assert!(drv.registered);
        assert_eq!((drv.state, drv.base), (ModuleState::Registered, 0));

        let device = |minor| Device {
            driver: "lc_drv".into(),
            minor,
        };
        assert_eq!(open(&kernel, &drivers, &device(3)).unwrap(), 1);
        let drv = module(&kernel, "lc_drv");
        assert_eq!(
            (drv.state, drv.auto_loaded, drv.opens),
            (ModuleState::Loaded, true, 1)
        );
        let refused = open(&kernel, &drivers, &device(7)).unwrap_err();
        match refused.downcast_ref::<LoadError>() {
            Some(LoadError::EntryFailed { entry, code: 6, .. }) if entry == "drv_open" => {}
            _ => panic!("minor 7 should fail with drv_open's ENXIO, got: {refused}"),
        }
        assert_eq!(module(&kernel, "lc_drv").opens, 1);
        // Not a driver: refused without loading it from the module path.
        assert!(open(&kernel, &drivers, &"lc_base:0".parse().unwrap()).is_err());
        assert!(kernel.find_module("lc_base").is_none());
        // No dlkm_test interface in this host.
        let user = open(&kernel, &drivers, &"lc_user:0".parse().unwrap()).unwrap_err();
        assert!(user.to_string().contains("interface dlkm_test"), "{user}");

        assert_eq!(kernel.close("lc_drv", 3).unwrap(), 0);
        assert!(
            kernel.unload_idle(None).is_empty(),
            "idle for less than 1 s"
        );
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(kernel.unload_idle(None), ["lc_drv"]);
        let drv = module(&kernel, "lc_drv");
        assert_eq!(
            (drv.state, drv.base, drv.opens),
            (ModuleState::Registered, 0, 0)
        );
    }

    #[test]
    fn run_leaves_the_driver_registered_after_the_auto_unloader() {
        let Some(dir) = lifecycle() else { return };
        let kernel = Arc::new(Kernel::native().unwrap());
        let devices = ["lc_drv:3", "lc_drv:7"].map(|d| d.parse().unwrap());
        assert_eq!(run(&kernel, &dir, &devices).unwrap(), 1, "minor 7 fails");
        let drv = module(&kernel, "lc_drv");
        assert_eq!(
            (drv.state, drv.base, drv.opens),
            (ModuleState::Registered, 0, 0)
        );
        assert!(drv.failure.is_none());
    }
}
