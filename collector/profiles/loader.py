"""Find, validate and resolve profiles. A user folder overrides bundled profiles by name."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from collector.core.errors import ProfileError
from collector.core.records import Kind
from collector.profiles.model import (
    DeviceProfile,
    ProfileFile,
)
from provisioning.validation import describe, validate_strictly

GENERIC = "generic"


def _read(name: str, text: str, origin: str) -> ProfileFile:
    try:
        return validate_strictly(ProfileFile, tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {name} ({origin}): not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise ProfileError(f"profile {name} ({origin}): {describe(exc)}") from None


class _Merge:
    """One section of a profile being resolved (snmp, tables or mqtt fields), in order:
    parents' fields first, then the file's own. A field may be declared once per file; a
    field that a parent declared differently may be redeclared only with `override = true`
    (else a typo or a copied block would silently replace it). Where each field came from
    is kept: `origins`."""

    def __init__(self, name: str, section: str, problems: list[str]) -> None:
        self.name, self.section, self.problems = name, section, problems
        self.fields: dict[tuple[Kind, str], Any] = {}
        self.origins: dict[tuple[Kind, str], str] = {}

    def add(self, specs: Sequence[Any], origin: str, origins: dict[tuple[Kind, str], str] | None) -> None:
        """`origins`: where a parent's fields came from; None for the file's own fields."""
        own: dict[tuple[Kind, str], Any] = {}
        for spec in specs:
            key = spec.key
            kind, field = key[0].value, key[1]
            what = f"table {field}" if self.section == "tables" else f"{self.section} {kind}.{field}"
            if origins is None and key in own:
                self.problems.append(f"profile {self.name} ({origin}): {what} is declared twice in this file")
                continue
            own[key] = spec
            before = self.fields.get(key)
            if before is not None and before != spec and not getattr(spec, "override", False):
                self.problems.append(
                    f"profile {self.name} ({origin}): {what} redefines the one in {self.origins[key]}; "
                    "set override = true on it if that is meant"
                )
                continue
            self.fields[key] = spec
            self.origins[key] = origins[key] if origins is not None else origin

    def result(self) -> tuple[Any, ...]:
        return tuple(self.fields.values())


class ProfileSet:
    def __init__(self, files: dict[str, tuple[ProfileFile, str]]) -> None:
        self._files = files
        self._resolved: dict[str, DeviceProfile] = {}
        # Per profile and section, where each field came from (the file that declared it).
        self.origins: dict[str, dict[str, dict[tuple[Kind, str], str]]] = {}
        problems: list[str] = []
        for name in files:
            try:
                self._resolve(name, ())
            except ProfileError as exc:
                problems.append(str(exc))
        if problems:
            raise ProfileError("; ".join(dict.fromkeys(problems)))

    def _resolve(self, name: str, chain: tuple[str, ...]) -> DeviceProfile:
        if name in self._resolved:
            return self._resolved[name]
        if name in chain:
            raise ProfileError(f"profile {name}: extends cycle {' -> '.join((*chain, name))}")
        if name not in self._files:
            child, child_origin = chain[-1], self._files[chain[-1]][1]
            raise ProfileError(f"profile {child} ({child_origin}): extends unknown profile {name!r}")
        spec, origin = self._files[name]
        problems: list[str] = []
        sections = {s: _Merge(name, s, problems) for s in ("snmp", "tables", "mqtt")}
        vendor, models, prefixes = spec.vendor, tuple(spec.models), tuple(spec.sysobjectid)
        identity = spec.trap_identity
        for parent_name in spec.extends:
            parent = self._resolve(parent_name, (*chain, name))
            found = self.origins[parent_name]
            sections["snmp"].add(parent.snmp, origin, found["snmp"])
            sections["tables"].add(parent.tables, origin, found["tables"])
            sections["mqtt"].add(parent.mqtt, origin, found["mqtt"])
            vendor = vendor or parent.vendor
            identity = identity or parent.trap_identity
        if not spec.getbulk:
            if spec.tables:
                problems.append(
                    f"profile {name} ({origin}): getbulk = false (the agent answers GET only), "
                    "so it cannot declare tables"
                )
            sections["tables"] = _Merge(name, "tables", problems)  # inherited tables cannot be walked
        sections["snmp"].add(spec.snmp, origin, None)
        sections["tables"].add(spec.tables, origin, None)
        sections["mqtt"].add(spec.mqtt, origin, None)
        seen: dict[str, str] = {}
        for field in sections["snmp"].result():
            if field.oid in seen:
                problems.append(
                    f"profile {name} ({origin}): oid {field.oid} is declared twice "
                    f"({seen[field.oid]} and {field.kind.value}.{field.field})"
                )
            seen[field.oid] = f"{field.kind.value}.{field.field}"
        if problems:
            raise ProfileError("; ".join(problems))
        profile = DeviceProfile(
            name=name,
            vendor=vendor,
            models=models,
            sysobjectid=prefixes,
            snmp=sections["snmp"].result(),
            tables=sections["tables"].result(),
            mqtt=sections["mqtt"].result(),
            origin=origin,
            trap_identity=identity,
        )
        self.origins[name] = {s: m.origins for s, m in sections.items()}
        self._resolved[name] = profile
        return profile

    def identity_oids(self) -> list[str]:
        """The OIDs of every profile's `trap_identity` varbind."""
        found = (self.get(name).trap_identity for name in self.names)
        return list(dict.fromkeys(i.oid for i in found if i is not None))

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
    """Every bundled profile, then those of the user folders (which override a bundled one
    of the same name). Every problem of every file is reported at once."""
    files: dict[str, tuple[ProfileFile, str]] = {}
    problems: list[str] = []

    def read(name: str, text: str, origin: str) -> None:
        try:
            files[name] = (_read(name, text, origin), origin)
        except ProfileError as exc:
            problems.append(str(exc))

    bundled = resources.files("collector.profiles").joinpath("bundled")
    for entry in sorted(bundled.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            read(entry.name.removesuffix(".toml"), entry.read_text(), f"bundled {entry.name}")
    for folder in user_dirs:
        if not folder.is_dir():
            problems.append(f"profile folder {folder} does not exist")
            continue
        for path in sorted(folder.glob("*.toml")):
            read(path.stem, path.read_text(encoding="utf-8"), str(path))
    if GENERIC not in files:
        problems.append("no 'generic' profile found; it is the fallback for unknown devices")
    try:
        profiles = ProfileSet(files)  # the files that could be read: their problems too
    except ProfileError as exc:
        problems.append(str(exc))
    if problems:
        raise ProfileError("; ".join(problems))
    return profiles
