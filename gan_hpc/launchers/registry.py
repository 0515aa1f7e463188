"""The launcher backends: the one place their names are listed.

Everything else asks this registry: the sweep spec (``launcher:`` and each backend's own block,
e.g. ``slurm:``), the CLI's ``--launcher`` choices, the Tune driver and ``sweep submit``. A
backend is one module with a :class:`~gan_hpc.launchers.base.Launcher` subclass (and, if it has
settings, a frozen config dataclass and its loader); adding one is that module plus one line in
:data:`LAUNCHERS`. A backend's launcher module loads only when a sweep uses it (submitit for
SLURM), so validating a spec stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gan_hpc.errors import LaunchError
from gan_hpc.launchers.base import Launcher, LaunchSpec
from gan_hpc.launchers.slurm_config import load_slurm_config

if TYPE_CHECKING:
    from gan_hpc.sweep.spec import SweepSpec


@dataclass(frozen=True, slots=True)
class LauncherBackend:
    """One launcher backend as the spec and the CLI see it, before its module loads.

    Attributes:
        load: imports the backend's module and returns its launcher class.
        load_settings: validates the backend's block of the sweep spec (the top-level key is
            the backend's name) into the object that :class:`LaunchSpec` carries opaquely;
            ``load_settings(raw, source=...)`` raises a one-line SpecError. None: no block.

    """

    load: Callable[[], type[Launcher]]
    load_settings: Callable[..., Any] | None = None


def _local() -> type[Launcher]:
    from gan_hpc.launchers.local import LocalLauncher

    return LocalLauncher


def _slurm() -> type[Launcher]:
    from gan_hpc.launchers.slurm import SlurmLauncher  # submitit loads here, and only here

    return SlurmLauncher


LAUNCHERS: dict[str, LauncherBackend] = {
    "local": LauncherBackend(load=_local),
    "slurm": LauncherBackend(load=_slurm, load_settings=load_slurm_config),
}
DEFAULT_LAUNCHER = "local"


def launcher_names() -> tuple[str, ...]:
    """Every registered launcher's name (the spec's ``launcher:`` and ``--launcher`` choices)."""
    return tuple(LAUNCHERS)


def settings_blocks() -> tuple[str, ...]:
    """The spec's top-level blocks that belong to a backend (e.g. ``slurm``)."""
    return tuple(name for name, backend in LAUNCHERS.items() if backend.load_settings is not None)


def load_launcher_settings(name: str, raw: Any, *, source: str) -> Any:
    """Validate backend ``name``'s spec block ``raw`` (None when absent) into its settings."""
    loader = _backend(name).load_settings
    if loader is None:
        raise LaunchError(f"launcher {name!r} has no {name}: block")
    return loader(raw, source=source)


def get_launcher(name: str) -> Launcher:
    """A new launcher of backend ``name``."""
    return _backend(name).load()()


def driver_launcher_name(name: str, *, is_explicit: bool = False) -> str:
    """The backend ``sweep submit`` uses: ``name`` if it has a driver job, else one that has.

    Args:
        name: the backend asked for (``--launcher``), else the spec's launcher.
        is_explicit: the user named it: no other backend stands in for it.

    Raises:
        LaunchError: the backend (or, unless explicit, every one) has no driver job.

    """
    launcher = _backend(name).load()
    if launcher.has_driver_job:
        return name
    if is_explicit:
        raise LaunchError(launcher.no_driver_job_reason())
    for other, backend in LAUNCHERS.items():
        if backend.load().has_driver_job:
            return other
    raise LaunchError(launcher.no_driver_job_reason())


def launch_spec_for(
    spec: SweepSpec,
    *,
    driver_token: str = "",
    warm_dir: str = "",
) -> LaunchSpec:
    """What a launcher needs to start a trial of ``spec``.

    Args:
        spec: the sweep's spec.
        driver_token: the driver run whose job poller answers for the trial's job.
        warm_dir: where the driver's warm trainer takes trials (a local sweep's watcher).

    """
    return LaunchSpec(
        world_size=spec.resources.world_size,
        cpus_per_trial=spec.resources.cpus_per_trial,
        nodes=spec.resources.nodes,
        settings=spec.launcher_settings.get(spec.launcher),
        job_name=f"gan-hpc.{spec.name}",  # every job of the sweep: scancel --name stops them all
        driver_token=driver_token,
        warm_dir=warm_dir,
    )


def _backend(name: str) -> LauncherBackend:
    """The backend called ``name``; an unknown name lists the valid ones."""
    if name not in LAUNCHERS:
        raise LaunchError(f"unknown launcher {name!r}; valid: {', '.join(LAUNCHERS)}")
    return LAUNCHERS[name]
