"""What the portal tests share: the server they drive, its token, the test programs."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from infra.settings import PROJECT_ROOT
from tests.harness import ServerProcess, get_json, wait_for

# A program whose resources come one at a time: a test can cut its event stream mid-way.
SLOW_PROGRAM = PROJECT_ROOT / "tests" / "portal" / "programs" / "slow"
# A program whose config keys share names with the create form's own fields ("name", "ttl"),
# with arrays of integers and booleans and a secret that has a default; it has no resources.
FIELDS_PROGRAM = PROJECT_ROOT / "tests" / "portal" / "programs" / "fields"
TOKEN = "portal-test-token"


@dataclass
class Server:
    """A running server and the token it wants (if any), with small API helpers."""

    process: ServerProcess
    token: str | None

    @property
    def url(self) -> str:
        return self.process.base_url

    def ui(self, page: str = "") -> str:
        return f"{self.url}/ui/{page}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def get(self, path: str) -> tuple[int, dict]:
        return get_json(self.url + path, headers=self.headers())

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """Any method, a JSON body, the token if the server has one."""
        request = urllib.request.Request(self.url + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json", **self.headers()})
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def finished(self, operation: str, timeout: float = 180) -> dict:
        """The operation once it has ended."""
        def ended() -> dict | None:
            status, body = self.get(f"/operations/{operation}")
            assert status == 200, body
            return body if body["status"] in ("succeeded", "failed", "cancelled") else None
        result: dict = wait_for(ended, timeout=timeout, what=f"operation {operation} to end")
        return result

    def events(self, operation: str) -> list[dict]:
        """Every event of the operation, as the JSON pages give them."""
        found: list[dict] = []
        after = 0
        while True:
            status, body = get_json(f"{self.url}/operations/{operation}/events?after={after}&limit=100",
                                    headers={"Accept": "application/json", **self.headers()})
            assert status == 200, body
            found += body["events"]
            if not body["events"] or body["next"] is None:
                return found
            after = body["next"]
