"""Shared plumbing for the testinfra suites: the deployment under test, its secrets, its APIs.

Why one module: the same suites run under every molecule scenario (the inventory comes from
``MOLECULE_INVENTORY_FILE``) and against the lab (``SEALSTORE_INFRA_INVENTORY``), so the
knowledge of *where things are* (custody files, EnvironmentFile, ports, CA) lives here once.
Names and paths are read from the roles' own defaults, rendered with the inventory's
variables, so the tests follow the roles instead of hard-coding their choices. The Vault API
is reached with ``hvac`` from the controller (``VaultAPI.client()``), like every other Vault
call of the test harness.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import json
import os
import re
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import custody_lib
import hvac
import hvac.adapters
import jinja2
import requests
import requests.adapters
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
MIN_SECRET_LEN = 16

# Keys whose values in controller custody JSON documents are secret material.
_SECRET_KEY_RE = re.compile(r"token|key|secret|password|unseal", re.IGNORECASE)
# JSON keys that name public facts even though they match the pattern above.
_PUBLIC_KEYS = {"unseal_threshold", "key_id", "key_name", "kms_key_id"}
# EnvironmentFile variables that carry secrets (``*_FILE`` ones name a path, not a secret).
_SECRET_ENV_RE = re.compile(r"^(?!.*_FILE$).*(SECRET|PASSWORD|MASTER_KEY|TOKEN)", re.IGNORECASE)


def inventory_source() -> Path | None:
    """The inventory of the deployment under test, or None when no deployment is named."""
    for var in ("MOLECULE_INVENTORY_FILE", "SEALSTORE_INFRA_INVENTORY"):
        value = os.environ.get(var)
        if value:
            return Path(value).resolve()
    return None


def _ansible_filters() -> dict[str, Any]:
    """The few Ansible filters the role defaults use, so they render outside Ansible."""
    return {
        "dirname": os.path.dirname,
        "basename": os.path.basename,
        "bool": lambda v: str(v).lower() in {"1", "true", "yes", "on"},
        "int": int,
    }


@functools.cache
def _role_defaults() -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for path in sorted(REPO.glob("roles/*/defaults/main.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        merged.update(data)
    return merged


def parse_env(text: str) -> dict[str, str]:
    """Parse a systemd EnvironmentFile (KEY=VALUE, optional quotes, # comments)."""
    env: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key.strip()] = value
    return env


@dataclass
class Deployment:
    """One deployed sealstore: hosts by group, settings, secrets, and how to re-run plays."""

    inventory: Path
    runner: AnsibleRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = AnsibleRunner(str(self.inventory))

    # ---- inventory -------------------------------------------------------------------------
    @property
    def inventory_dir(self) -> Path:
        """Ansible's ``inventory_dir``: where the roles keep controller custody (``.secrets``)."""
        if self.inventory.is_dir():
            return self.inventory
        return self.inventory.parent

    def group(self, name: str) -> list[str]:
        return sorted(self.runner.get_hosts(name))

    @property
    def vault_hosts(self) -> list[str]:
        return self.group("vault_servers")

    @property
    def storage_hosts(self) -> list[str]:
        return self.group("storage_servers")

    @property
    def client_hosts(self) -> list[str]:
        return self.group("sse_clients")

    @property
    def all_hosts(self) -> list[str]:
        return sorted(set(self.vault_hosts + self.storage_hosts + self.client_hosts))

    def host(self, name: str) -> testinfra.host.Host:
        return testinfra.get_host(f"ansible://{name}", ansible_inventory=str(self.inventory))

    def hostvars(self, name: str) -> dict[str, Any]:
        return self.runner.get_variables(name)

    # ---- settings --------------------------------------------------------------------------
    def setting(self, var: str, host: str) -> Any:
        """A variable as the play sees it: inventory value, else the role default, rendered."""
        hv = self.hostvars(host)
        context: dict[str, Any] = {**_role_defaults(), **hv}
        context["inventory_hostname"] = host
        context["inventory_dir"] = str(self.inventory_dir)
        context["groups"] = {
            g: self.group(g)
            for g in ("vault_servers", "vault_unsealers", "storage_servers", "sse_clients", "all")
        }
        if var not in context:
            raise KeyError(f"{var} is neither an inventory variable nor a role default")
        env = jinja2.Environment(undefined=jinja2.ChainableUndefined, autoescape=False)
        env.filters.update(_ansible_filters())
        value = context[var]
        for _ in range(10):
            if not isinstance(value, str) or "{" not in value:
                return value
            value = env.from_string(value).render(**context)
        return value

    @property
    def kms_mode(self) -> str:
        hosts = self.storage_hosts or self.all_hosts
        return str(self.hostvars(hosts[0]).get("kms_mode", "vault"))

    @property
    def namespace(self) -> str:
        hosts = self.vault_hosts or self.all_hosts
        return str(self.hostvars(hosts[0]).get("vault_kms_namespace", "") or "")

    # ---- containers ------------------------------------------------------------------------
    def address(self, host: str) -> str:
        """An address the controller can reach the host on (container IP for docker hosts)."""
        hv = self.hostvars(host)
        if "docker" in str(hv.get("ansible_connection", "")):
            out = subprocess.run(
                [
                    "docker",
                    "inspect",
                    "--format",
                    "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                    host,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            if out:
                return out[0]
        return str(hv.get("ansible_host", host))

    # ---- playbooks -------------------------------------------------------------------------
    def run_playbook(
        self,
        playbook: Path,
        *args: str,
        verbosity: int = 0,
        timeout: float = 1200,
    ) -> subprocess.CompletedProcess[str]:
        """Run ansible-playbook against this inventory; output is captured, never printed."""
        cmd = ["ansible-playbook", "-i", str(self.inventory), str(playbook), *args]
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        env = dict(os.environ)
        env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
        env["ANSIBLE_NOCOLOR"] = "1"
        env["ANSIBLE_FORCE_COLOR"] = "0"
        return subprocess.run(
            cmd,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # ---- secrets ---------------------------------------------------------------------------
    @property
    def secrets_dir(self) -> Path:
        return self.inventory_dir / ".secrets"

    def custody_file(self, vault_host: str) -> Path:
        return Path(self.setting("vault_server_custody_file", vault_host))

    def custody(self, vault_host: str) -> dict[str, Any]:
        """The vault_server role's custody document (admin token, where the shares are)."""
        return custody_lib.read_json(self.custody_file(vault_host))

    def admin_token(self, vault_host: str) -> str:
        """The scoped admin token the roles use after setup (the root token of a deployment
        from before the admin token existed)."""
        doc = self.custody(vault_host)
        return str(doc.get("admin_token") or doc["root_token"])

    def root_token(self, vault_host: str) -> str:
        """A root token for the checks that need one: regenerated from the admin token and
        the key shares on the controller (the roles revoke the init root token), once per
        cluster and test session, and revoked when the session ends."""
        key = str(self.custody_file(vault_host))
        if key not in _ROOT_TOKENS:
            doc = self.custody(vault_host)
            if doc.get("root_token"):
                return str(doc["root_token"])
            api = vault_api(self, vault_host, with_token=False)
            api.token = self.admin_token(vault_host)

            def admin_call(method: str, path: str, body: dict[str, Any] | None):
                return api.request(method, path, body=body)

            token = custody_lib.generate_root(admin_call, custody_lib.shares(doc))
            _ROOT_TOKENS[key] = token
            atexit.register(_revoke, api, token)
        return _ROOT_TOKENS[key]

    def storage_env_file(self, storage_host: str) -> str:
        """The EnvironmentFile the storage unit really uses (asked from systemd)."""
        h = self.host(storage_host)
        service = self.setting("storage_server_service_name", storage_host)
        out = h.check_output("systemctl show -p EnvironmentFiles --value %s", service)
        # "path (ignore_errors=no)" per entry
        files = [part.split(" ")[0] for part in out.split("\n") if part.strip()]
        assert files, f"{service} on {storage_host} has no EnvironmentFile"
        return files[0].lstrip("-")

    def storage_env(self, storage_host: str) -> dict[str, str]:
        h = self.host(storage_host)
        content = h.run("cat %s", self.storage_env_file(storage_host))
        assert content.rc == 0, content.stderr
        return parse_env(content.stdout)

    # ---- the S3 endpoint: HTTPS unless the inventory chose plain HTTP (issue 8 item 10) ----
    def storage_tls(self, storage_host: str) -> bool:
        return bool(self.setting("storage_server_tls_enabled", storage_host))

    def storage_url(self, storage_host: str, address: str | None = None) -> str:
        """``https://HOST:PORT`` (or ``http://`` where the inventory turned TLS off). With
        ``address`` (an IP), the name still goes in the URL, so SNI and certificate checks use
        it, and ``pin_address`` makes this process connect to ``address``."""
        scheme = "https" if self.storage_tls(storage_host) else "http"
        port = self.setting("storage_server_port", storage_host)
        if address is not None:
            pin_address(storage_host, address)
        return f"{scheme}://{storage_host}:{port}"

    def storage_ca_file(self, storage_host: str) -> str | bool:
        """The controller's CA file of the storage certificates (``verify=`` for boto3), or
        True (system trust) for a plain-HTTP endpoint where it does not matter."""
        if not self.storage_tls(storage_host):
            return True
        return str(Path(str(self.setting("storage_server_tls_ca_dir", storage_host))) / "ca.pem")

    def metrics_token(self, storage_host: str) -> str:
        """The admin bearer token, as the storage host has it (the file the unit reads)."""
        path = self.storage_env(storage_host)["SEALSTORE_METRICS_TOKEN_FILE"]
        return str(self.host(storage_host).check_output("cat %s", path)).strip()

    def secret_values(self) -> set[str]:
        """Every secret this deployment holds: controller custody files plus hosts' env files."""
        found: set[str] = set()
        if self.secrets_dir.is_dir():
            for path in self.secrets_dir.rglob("*"):
                if path.is_file():
                    found |= _secrets_in_file(path)
        for host in self.storage_hosts:
            for key, value in self.storage_env(host).items():
                if _SECRET_ENV_RE.search(key):
                    found |= _with_parts(value)
        return {s for s in found if len(s) >= MIN_SECRET_LEN}


_PINNED: dict[str, str] = {}
_real_getaddrinfo = socket.getaddrinfo


def _pinned_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    return _real_getaddrinfo(
        _PINNED.get(host, host) if isinstance(host, str) else host, *args, **kwargs
    )


def pin_address(name: str, address: str) -> None:
    """Resolve ``name`` to ``address`` in this test process: containers have no DNS entry on
    the controller, and their certificates name the host, not the container IP."""
    _PINNED[name] = address
    socket.getaddrinfo = _pinned_getaddrinfo


_ROOT_TOKENS: dict[str, str] = {}


def _revoke(api: VaultAPI, token: str) -> None:
    """Revoke a root token this session generated (best effort: the host may be gone)."""
    with contextlib.suppress(Exception):
        api.client(token=token).auth.token.revoke_self()


def _with_parts(value: str) -> set[str]:
    """A secret plus the parts that are secret on their own (the hex of ``id:hex``)."""
    out = {value}
    if ":" in value:
        tail = value.split(":", 1)[1]
        if len(tail) >= MIN_SECRET_LEN:
            out.add(tail)
    return out


def _json_secrets(doc: Any, key: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out |= _json_secrets(v, k)
    elif isinstance(doc, list):
        for v in doc:
            out |= _json_secrets(v, key)
    elif isinstance(doc, str) and _SECRET_KEY_RE.search(key) and key not in _PUBLIC_KEYS:
        out |= _with_parts(doc)
    return out


def _secrets_in_file(path: Path) -> set[str]:
    text = path.read_text(errors="replace")
    if text.startswith(custody_lib.VAULT_HEADER):
        if not custody_lib.vault_password():
            return set()  # encrypted at rest and no password here: nothing to look for
        # the plaintext is what must never show up anywhere else
        text = custody_lib.read_text(path)
    if path.suffix in {".pem", ".crt", ".key", ".csr"} or "-----BEGIN" in text:
        if "PRIVATE KEY" not in text:
            return set()  # certificates are public
        body = [ln for ln in text.splitlines() if ln and not ln.startswith("-----")]
        return set(body[:2])
    try:
        return _json_secrets(json.loads(text))
    except json.JSONDecodeError:
        pass
    out: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if "=" in line and re.match(r"^[A-Z_][A-Z0-9_]*=", line):
            key, value = line.split("=", 1)
            if _SECRET_ENV_RE.search(key):
                out |= _with_parts(value.strip("'\""))
        elif line:
            out |= _with_parts(line)
    return out


def find_leaks(text: str, secrets: set[str]) -> list[str]:
    """Describe (without revealing) every secret found in ``text``."""
    leaks = []
    for s in sorted(secrets):
        if s in text:
            leaks.append(f"secret {s[:4]}… ({len(s)} chars) at offset {text.index(s)}")
        b64 = base64.b64encode(s.encode()).decode()
        if len(s) >= MIN_SECRET_LEN and b64 in text:
            leaks.append(f"base64 of secret {s[:4]}… ({len(s)} chars)")
    return leaks


def scan_hosts(dep: Deployment, secrets: set[str]) -> dict[str, dict[str, Any]]:
    """Run the secret scan playbook on every host; per host: world-readable files, ps, journal."""
    with tempfile.TemporaryDirectory(prefix="sealstore-scan-") as tmp:
        patterns = Path(tmp) / "patterns"
        fd = os.open(patterns, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(sorted(secrets)) + "\n")
        out_dir = Path(tmp) / "out"
        out_dir.mkdir(mode=0o700)
        proc = dep.run_playbook(
            PLAYBOOKS / "secret_scan.yml",
            "-e",
            f"scan_patterns_src={patterns}",
            "-e",
            f"scan_out_dir={out_dir}",
        )
        assert proc.returncode == 0, f"secret scan play failed:\n{proc.stdout[-4000:]}"
        return {p.stem: json.loads(p.read_text()) for p in out_dir.glob("*.json")}


class _PinnedNameAdapter(requests.adapters.HTTPAdapter):
    """Connect to the URL's IP address but send SNI for, and verify the certificate against,
    a host name (containers have no DNS entry on the controller)."""

    def __init__(self, server_name: str) -> None:
        self._server_name = server_name
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["server_hostname"] = self._server_name
        super().init_poolmanager(*args, **kwargs)


@dataclass
class VaultAPI:
    """Where a Vault/OpenBao host's API is, and ``hvac`` clients for it from the controller.

    Requests go to the host's address (the container IP) over TLS verified with the play's CA
    for the host's inventory name, so every call also proves the listener, the certificate and
    the CA file the storage hosts get.
    """

    ip: str
    port: int
    server_name: str
    ca_file: str
    token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"https://{self.ip}:{self.port}"

    def client(
        self,
        *,
        namespace: str = "",
        token: str | None = None,
        anonymous: bool = False,
        raw: bool = False,
    ) -> hvac.Client:
        """An ``hvac.Client``: the root token from custody unless ``token`` or ``anonymous``.

        ``namespace`` makes hvac send ``X-Vault-Namespace``; ``raw`` selects hvac's
        ``RawAdapter`` (answers are ``requests.Response`` objects, errors are not raised) for
        checks that assert a status code.
        """
        session = requests.Session()
        session.mount("https://", _PinnedNameAdapter(self.server_name))
        # hvac lets a truthy session.verify override its verify argument: set it here
        session.verify = self.ca_file
        if anonymous:
            token = ""  # not None: hvac would fall back to VAULT_TOKEN / ~/.vault-token
        elif token is None:
            token = self.token or ""
        return hvac.Client(
            url=self.url,
            token=token,
            verify=self.ca_file,
            timeout=15,
            session=session,
            namespace=namespace or None,
            adapter=hvac.adapters.RawAdapter if raw else hvac.adapters.JSONAdapter,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        namespace: str = "",
        body: dict[str, Any] | None = None,
        token: bool = True,
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of one raw call through hvac's adapter, for checks that assert an
        exact status (sys/health answers 429/473/503 by design); ``token=False`` is anonymous."""
        client = self.client(namespace=namespace, anonymous=not token, raw=True)
        client.adapter.allow_redirects = False  # a standby's 307 is an answer, not a hop
        resp = client.adapter.request(method, path, json=body, raise_exception=False)
        try:
            doc = resp.json() if resp.content else {}
        except ValueError:
            doc = {"raw": resp.text}
        return resp.status_code, doc if isinstance(doc, dict) else {"data": doc}

    def get(self, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        return self.request("GET", path, **kw)


def vault_api(dep: Deployment, vault_host: str, *, with_token: bool = True) -> VaultAPI:
    port = int(dep.setting("vault_server_port", vault_host))
    ca = dep.secrets_dir / "pki" / "ca.pem"
    with contextlib.suppress(KeyError, jinja2.TemplateError):
        ca = Path(dep.setting("vault_kms_ca_cert_controller", vault_host))
    token = dep.root_token(vault_host) if with_token else None
    return VaultAPI(dep.address(vault_host), port, vault_host, str(ca), token)


HCL_PATH_RE = re.compile(r'path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}', re.S)


def parse_policy(text: str) -> dict[str, list[str]]:
    """Path -> capabilities of an HCL policy (the only constructs the quickstart uses)."""
    blocks = {m.group(1): re.findall(r'"([^"]+)"', m.group(2)) for m in HCL_PATH_RE.finditer(text)}
    stripped = HCL_PATH_RE.sub("", text)
    stripped = re.sub(r"#[^\n]*", "", stripped).strip()
    if stripped:
        blocks["<unparsed>"] = [stripped]
    return blocks
