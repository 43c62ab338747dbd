//! Choosing the compute device.
use tch::Device;

use crate::error::{Error, Result};

/// `auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(spec: &str) -> Result<Device> {
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        s => match s
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) => cuda(n),
            None => Err(Error::Invalid(format!(
                "unknown device `{spec}` (auto, cpu, cuda or cuda:N)"
            ))),
        },
    }
}

fn cuda(index: usize) -> Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if index < count {
        Ok(Device::Cuda(index))
    } else if count == 0 {
        Err(Error::Invalid(
            "CUDA was requested but no CUDA device is available".into(),
        ))
    } else {
        Err(Error::Invalid(format!(
            "CUDA device {index} requested but only {count} available"
        )))
    }
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}
