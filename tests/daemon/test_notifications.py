"""Notifications through Apprise (issue 16): a real daemon tells a real HTTP receiver on
127.0.0.1 (Apprise's generic JSON webhook) what happened and what to type; secrets never reach
it; a receiver that fails is retried, shown in the status, and never fails a cycle; the same
thing said twice within the window is sent once."""

from __future__ import annotations

import asyncio

import pytest

from overseer.base.problems import ProblemsError
from overseer.client import Client
from overseer.config import load_config
from overseer.daemon.server import run_daemon
from overseer.render import status_text
from overseer.vocabulary import RegressionFound, TargetUnhealthy
from support.helpers import next_event
from support.receiver import Receiver, closed_port


def notify(*urls: str, **settings: object) -> list[dict[str, object]]:
    return [{"url": url, **settings} for url in urls]


async def wait_status(client, ready, timeout: float = 60):  # type: ignore[no-untyped-def]
    """The daemon's status once `ready(status)` holds (a limit against a hang only)."""
    for _ in range(int(timeout / 0.05)):
        status = await client.request("status")
        if ready(status):
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"the status never got there: {status.get('notifications')}")


@pytest.mark.usefixtures("warm_baseline")
async def test_a_change_that_waits_is_one_message_saying_what_to_type(daemon_options):
    with Receiver() as receiver:
        async with run_daemon(daemon_options(notify=notify(receiver.url))) as daemon:
            async with Client(daemon.socket_path) as client:
                await client.request("subscribe")
                await client.request("run_now")
                requested = await next_event(client, "ApprovalRequested")
                finished = await next_event(client, "CycleFinished")
                assert finished["status"] == "ok"
                receiver.wait_for(1)
                iid = requested["improvement_id"][:8]
                [message] = receiver.messages
                assert f"overseer approve {iid}" in message["message"]
                assert iid in message["title"] and "approval" in message["title"]

                # The same event again within the window: not sent; the next one is.
                daemon.rt.bus.emit(_same(requested))
                daemon.rt.bus.emit(TargetUnhealthy(target="proj", reason="the disk went away"))
                receiver.wait_for(2)
                assert "the disk went away" in receiver.messages[1]["message"]
                status = await client.request("status")
                [shown] = status["notifications"]
                assert shown["ok"] is True and shown["sent"] == 2 and shown["failures"] == 0
                assert shown["url"].startswith("json://127.0.0.1")
        receiver.wait_for(3)  # stopping: said before the daemon is gone
        assert "stopping" in receiver.messages[2]["title"]
        assert len(receiver.messages) == 3


def _same(event: dict[str, object]):  # type: ignore[no-untyped-def]
    from overseer.vocabulary import event_from_dict

    typed = event_from_dict(event)
    assert typed is not None
    return typed


async def test_a_secret_in_an_event_never_reaches_the_receiver(monkeypatch, daemon_options):
    secret = "hunter2-very-secret-value"
    monkeypatch.setenv("OVERSEER_TEST_TOKEN", secret)
    with Receiver() as receiver:
        async with run_daemon(daemon_options(notify=notify(receiver.url))) as daemon:
            daemon.rt.bus.emit(
                RegressionFound(
                    improvement_id="0123456789abcdef",
                    reason=f"the service answered 401 with token {secret}",
                    action="needs a human",
                    detail=f"git revert failed: {secret}",
                )
            )
            receiver.wait_for(1)
        raw = b"".join(receiver.raw)
        assert secret.encode() not in raw
        assert "[secret OVERSEER_TEST_TOKEN]" in receiver.messages[0]["message"]
        assert "overseer rollback 01234567" in receiver.messages[0]["message"]


@pytest.mark.usefixtures("warm_baseline")
async def test_a_failing_receiver_is_retried_shown_in_status_and_the_cycle_ends_normally(
    daemon_options,
):
    dead = f"json://127.0.0.1:{closed_port()}/hook"
    with Receiver(status=500) as failing:
        options = daemon_options(
            notify=notify(failing.url, dead, retry_after=0.05, retries=2, timeout=2)
        )
        async with run_daemon(options) as daemon:
            async with Client(daemon.socket_path) as client:
                await client.request("subscribe")
                await client.request("run_now")
                await next_event(client, "ApprovalRequested")
                finished = await next_event(client, "CycleFinished")
                assert finished["status"] == "ok"
                failing.wait_for(3)  # the first send and two retries

                def given_up(status):  # type: ignore[no-untyped-def]
                    return all(n["pending"] == 0 for n in status["notifications"])

                status = await wait_status(client, given_up)
                for shown in status["notifications"]:
                    assert shown["ok"] is False and shown["failures"] == 3, shown
                    assert shown["last_error"] and shown["dropped"] == 1 and shown["sent"] == 0
                text = status_text(status)
                assert f"notify json://127.0.0.1:{failing.port}/hook: FAILING" in text
                assert "3 failed send(s), given up" in text
                assert failing.requests == 3
                # The daemon still answers and decides.
                assert (await client.request("status"))["state"] in ("idle", "running")


def test_event_names_are_checked_where_they_are_written(tmp_path):
    config = tmp_path / "overseer.yaml"
    config.write_text(
        "notify:\n"
        "  - url: json://127.0.0.1:9/hook\n"
        "    events: [ApprovalRequested, BreakerTripped, ChangeExploded]\n"
        "  - url: nonsense-without-scheme\n"
    )
    with pytest.raises(ProblemsError) as problems:
        load_config(config)
    found = [str(p) for p in problems.value.problems]
    assert any(f"{config}:3" in p and "no such event: ChangeExploded" in p for p in found), found
    assert any(f"{config}:4" in p and "an Apprise URL" in p for p in found), found
    config.write_text(
        "notify:\n  - url: json://127.0.0.1:9/hook\n    events: [BreakerTripped, DaemonStopping]\n"
    )
    [receiver] = load_config(config).notify
    assert receiver.events == ["CircuitBreakerTripped", "DaemonStopping"]


async def test_receivers_added_or_removed_by_a_reload_apply_at_once(daemon_options):
    """A reload that adds a receiver: it hears what follows, and the status shows it; one that
    removes it again: it hears nothing more, not even the daemon stopping. A metrics change is
    said to wait for a restart, not silently ignored."""
    import yaml

    opts = daemon_options()
    with Receiver() as receiver:
        async with run_daemon(opts) as daemon, Client(daemon.socket_path) as client:
            await client.request("subscribe")
            data = yaml.safe_load(opts.config_path.read_text())
            data["notify"] = notify(receiver.url)
            opts.config_path.write_text(yaml.safe_dump(data))
            added = await next_event(client, "ConfigReloaded", timeout=20)
            assert added["changes"] == ["notify: 0 → 1 receiver(s)"]
            daemon.rt.bus.emit(TargetUnhealthy(target="proj", reason="the disk went away"))
            receiver.wait_for(1)
            assert "the disk went away" in receiver.messages[0]["message"]
            [shown] = (await client.request("status"))["notifications"]
            assert shown["sent"] == 1

            del data["notify"]
            data["metrics"] = {"listen": "127.0.0.1:0"}
            opts.config_path.write_text(yaml.safe_dump(data))
            removed = await next_event(client, "ConfigReloaded", timeout=20)
            assert removed["changes"] == [
                "notify: 1 → 0 receiver(s)",
                "metrics changed (takes effect after a restart)",
            ]
            assert (await client.request("status"))["notifications"] == []
            daemon.rt.bus.emit(TargetUnhealthy(target="proj", reason="gone again"))
        assert len(receiver.messages) == 1, receiver.messages
