"""Find, validate and resolve profiles. A user folder overrides bundled profiles by name."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Protocol, TypeVar

from pydantic import ValidationError

from collector.core.errors import ProfileError
from collector.core.records import Kind
from collector.profiles.model import (
    DeviceProfile,
    MqttFieldSpec,
    ProfileFile,
    SnmpFieldSpec,
    TableSpec,
)
from provisioning.validation import describe

GENERIC = "generic"


class _Keyed(Protocol):
    @property
    def key(self) -> tuple[Kind, str]: ...


_Spec = TypeVar("_Spec", bound=_Keyed)


def _read(name: str, text: str, origin: str) -> ProfileFile:
    try:
        return ProfileFile.model_validate(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {name} ({origin}): not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ProfileError(f"profile {name} ({origin}): {describe(exc)}") from None


def _merge(parent: tuple[_Spec, ...], child: list[_Spec]) -> tuple[_Spec, ...]:
    """Parent fields first; a child field with the same kind and name replaces the parent's."""
    own = {spec.key: spec for spec in child}
    merged = [own.pop(spec.key, spec) for spec in parent]
    return (*merged, *own.values())


class ProfileSet:
    def __init__(self, files: dict[str, tuple[ProfileFile, str]]) -> None:
        self._files = files
        self._resolved: dict[str, DeviceProfile] = {}
        for name in files:
            self._resolve(name, ())

    def _resolve(self, name: str, chain: tuple[str, ...]) -> DeviceProfile:
        if name in self._resolved:
            return self._resolved[name]
        if name in chain:
            raise ProfileError(f"profile {name}: extends cycle {' -> '.join((*chain, name))}")
        if name not in self._files:
            raise ProfileError(f"profile {chain[-1]}: extends unknown profile {name!r}")
        spec, origin = self._files[name]
        snmp: tuple[SnmpFieldSpec, ...] = ()
        tables: tuple[TableSpec, ...] = ()
        mqtt: tuple[MqttFieldSpec, ...] = ()
        vendor, models, prefixes = spec.vendor, tuple(spec.models), tuple(spec.sysobjectid)
        for parent_name in spec.extends:
            parent = self._resolve(parent_name, (*chain, name))
            snmp, mqtt = _merge(snmp, list(parent.snmp)), _merge(mqtt, list(parent.mqtt))
            tables = _merge(tables, list(parent.tables))
            vendor = vendor or parent.vendor
        if not spec.getbulk:
            if spec.tables:
                raise ProfileError(
                    f"profile {name} ({origin}): getbulk = false (the agent answers GET only), "
                    "so it cannot declare tables"
                )
            tables = ()  # inherited tables cannot be walked on a GET-only agent
        profile = DeviceProfile(
            name=name,
            vendor=vendor,
            models=models,
            sysobjectid=prefixes,
            snmp=_merge(snmp, spec.snmp),
            tables=_merge(tables, spec.tables),
            mqtt=_merge(mqtt, spec.mqtt),
            origin=origin,
        )
        seen: set[str] = set()
        for field in profile.snmp:
            if field.oid in seen:
                raise ProfileError(f"profile {name} ({origin}): oid {field.oid} is declared twice")
            seen.add(field.oid)
        self._resolved[name] = profile
        return profile

    @property
    def names(self) -> list[str]:
        """Concrete profiles (names starting with '_' are abstract: only extended)."""
        return sorted(n for n in self._resolved if not n.startswith("_"))

    def get(self, name: str) -> DeviceProfile:
        if name not in self._resolved or name.startswith("_"):
            raise ProfileError(f"unknown profile {name!r}; known: {', '.join(self.names)}")
        return self._resolved[name]

    def by_sysobjectid(self, sysobjectid: str) -> DeviceProfile:
        """The profile with the longest sysObjectID prefix match, else the generic one."""
        best, best_len = self.get(GENERIC), -1
        for name in self.names:
            for prefix in self._resolved[name].sysobjectid:
                if (sysobjectid == prefix or sysobjectid.startswith(prefix + ".")) and len(prefix) > best_len:
                    best, best_len = self._resolved[name], len(prefix)
        return best

    def by_model(self, vendor: str, model: str) -> DeviceProfile | None:
        for name in self.names:
            profile = self._resolved[name]
            if profile.vendor.lower() == vendor.lower() and any(
                model.upper().startswith(m.upper()) for m in profile.models
            ):
                return profile
        return None


def load_profiles(user_dirs: Iterable[Path] = ()) -> ProfileSet:
    files: dict[str, tuple[ProfileFile, str]] = {}
    bundled = resources.files("collector.profiles").joinpath("bundled")
    for entry in sorted(bundled.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            name = entry.name.removesuffix(".toml")
            files[name] = (_read(name, entry.read_text(), "bundled"), "bundled")
    for folder in user_dirs:
        if not folder.is_dir():
            raise ProfileError(f"profile folder {folder} does not exist")
        for path in sorted(folder.glob("*.toml")):
            files[path.stem] = (
                _read(path.stem, path.read_text(encoding="utf-8"), str(path)),
                str(path),
            )
    if GENERIC not in files:
        raise ProfileError("no 'generic' profile found; it is the fallback for unknown devices")
    return ProfileSet(files)
