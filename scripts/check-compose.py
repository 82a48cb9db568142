#!/usr/bin/env python3
"""Structural check of the compose files (no Docker engine here): valid YAML, known top-level keys,
every depends_on/network/volume reference defined, every service has an image or build, healthcheck
conditions point at services that define a healthcheck (or an image known to have one)."""
import sys

import yaml

TOP = {"name", "services", "volumes", "networks", "secrets", "configs", "include", "x-common"}
errors = []
for path in sys.argv[1:]:
    with open(path) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or "services" not in doc:
        errors.append(f"{path}: no services")
        continue
    for key in doc:
        if key not in TOP and not key.startswith("x-"):
            errors.append(f"{path}: unknown top-level key {key}")
    services = doc["services"]
    volumes = set((doc.get("volumes") or {}).keys())
    networks = set((doc.get("networks") or {}).keys()) | {"default"}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            errors.append(f"{path}: {name} has neither image nor build")
        deps = svc.get("depends_on") or {}
        for dep, cond in (deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps)):
            if dep not in services:
                errors.append(f"{path}: {name} depends on unknown service {dep}")
            elif cond.get("condition") == "service_healthy" and "healthcheck" not in services[dep] and "build" not in services[dep]:
                errors.append(f"{path}: {name} waits for {dep} to be healthy but {dep} has no healthcheck")
        for net in svc.get("networks") or []:
            if net not in networks:
                errors.append(f"{path}: {name} uses undefined network {net}")
        for vol in svc.get("volumes") or []:
            src = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if src and not src.startswith((".", "/", "~")) and src not in volumes:
                errors.append(f"{path}: {name} uses undefined volume {src}")
        for port in svc.get("ports") or []:
            if not isinstance(port, str):
                errors.append(f"{path}: {name} port {port!r} should be a quoted string")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"compose files ok: {', '.join(sys.argv[1:])}")
