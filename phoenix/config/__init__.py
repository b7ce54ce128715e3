"""phoenix.toml: the models of what the operator wants (`models`), and its loading (`load`)."""

from phoenix.config.load import CONFIG_ENV, CONFIG_NAME, HOME_ENV, config_path, load, state_home
from phoenix.config.models import (
    DEFAULT_DRIFT_ROOTS,
    AwsConfig,
    CanaryConfig,
    Cloud,
    Config,
    DriftConfig,
    FleetConfig,
    HealthCheck,
    ImageConfig,
    LabConfig,
    ScheduleConfig,
    Severity,
    Strategy,
    TerraformConfig,
    TimeoutsConfig,
)

__all__ = [
    "CONFIG_ENV",
    "CONFIG_NAME",
    "DEFAULT_DRIFT_ROOTS",
    "HOME_ENV",
    "AwsConfig",
    "CanaryConfig",
    "Cloud",
    "Config",
    "DriftConfig",
    "FleetConfig",
    "HealthCheck",
    "ImageConfig",
    "LabConfig",
    "ScheduleConfig",
    "Severity",
    "Strategy",
    "TerraformConfig",
    "TimeoutsConfig",
    "config_path",
    "load",
    "state_home",
]
