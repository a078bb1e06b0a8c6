"""A domain written the way tau2-bench writes its domains (pydantic database model, toolkit class
with tau2's ``is_tool`` marks, user tools on their own database, tasks in tau2's JSON), loaded
from tau2's folder layout."""

import hashlib
import importlib.util
import json
import sys
import textwrap

import pytest

import traject
from traject.agents import AgentLoop, ScriptedPolicy
from traject.environments.customer_service import DomainError, DomainState, load_domain
from traject.environments.customer_service.tasks import gold_state
from traject.testing import ScriptedReply
from traject.types import Message, Status, ToolCall

TOOLS_PY = '''
from enum import Enum
from typing import Literal, Optional

from pydantic import BaseModel


class ToolType(str, Enum):          # tau2's marks, as tau2.environment.toolkit sets them
    READ = "read"
    WRITE = "write"
    GENERIC = "generic"


def is_tool(tool_type=ToolType.READ, mutates_state=None):
    def mark(func):
        func.__tool__ = True
        func.__tool_type__ = tool_type
        func.__mutates_state__ = tool_type == ToolType.WRITE if mutates_state is None else mutates_state
        return func
    return mark


class Book(BaseModel):
    book_id: str
    title: str
    copies: int


class Member(BaseModel):
    member_id: str
    name: str
    loans: list[str]
    fines: float = 0.0
    note: Optional[str] = None


class LibraryDB(BaseModel):
    books: dict[str, Book]
    members: dict[str, Member]


class LibraryTools:
    db: LibraryDB

    def __init__(self, db: LibraryDB) -> None:
        self.db = db

    @is_tool(ToolType.READ)
    def get_member(self, member_id: str) -> Member:
        """Look up a member.

        Args:
            member_id: The member id.
        """
        if member_id not in self.db.members:
            raise ValueError(f"Member {member_id} not found")
        return self.db.members[member_id]

    @is_tool(ToolType.WRITE)
    def lend_book(self, member_id: str, book_id: str) -> Member:
        """Lend a book to a member.

        Args:
            member_id: The member id.
            book_id: The book id.
        """
        member, book = self.get_member(member_id), self.db.books[book_id]
        if book.copies < 1:
            raise ValueError("No copies left")
        book.copies -= 1
        member.loans.append(book_id)
        return member

    @is_tool(ToolType.WRITE)
    def charge_fine(self, member_id: str, amount: float, reason: Literal["late", "damage"]) -> Member:
        """Charge a fine.

        Args:
            member_id: The member id.
            amount: The amount.
            reason: late or damage.
        """
        member = self.get_member(member_id)
        member.fines = round(member.fines + amount, 2)
        return member

    @is_tool(ToolType.GENERIC, mutates_state=False)
    def transfer_to_human_agents(self, summary: str) -> str:
        """Transfer to a human.

        Args:
            summary: Why.
        """
        return "Transfer successful"

    def assert_loans(self, member_id: str, expected: int) -> bool:
        return len(self.db.members[member_id].loans) == expected

    def set_note(self, member_id: str, note: str) -> None:
        self.db.members[member_id].note = note
'''

USER_TOOLS_PY = '''
from pydantic import BaseModel

from traject_test_tau2_marks import is_tool


class Phone(BaseModel):
    notifications: list[str]


class UserDB(BaseModel):
    phone: Phone


class LibraryUserTools:
    def __init__(self, db: UserDB) -> None:
        self.db = db

    @is_tool()
    def read_notifications(self) -> list[str]:
        """Read the notifications on your phone."""
        return self.db.phone.notifications

    @is_tool(mutates_state=True)
    def clear_notifications(self) -> str:
        """Clear your notifications."""
        self.db.phone.notifications = []
        return "cleared"
'''

DB = {"books": {"b1": {"book_id": "b1", "title": "Dune", "copies": 2}, "b2": {"book_id": "b2", "title": "Emma", "copies": 0}},
      "members": {"m1": {"member_id": "m1", "name": "Ana", "loans": []}, "m2": {"member_id": "m2", "name": "Ben", "loans": ["b2"]}}}
USER_DB = {"phone": {"notifications": ["Your loan of Emma is overdue"]}}
TASKS = [
    {"id": "lend", "user_scenario": {"persona": "Brief.", "instructions": {
        "domain": "library", "reason_for_call": "You want to borrow Dune.", "known_info": "You are member m1.",
        "task_instructions": "Say yes when asked."}},
     "initial_state": {"initialization_data": {"agent_data": {"members": {"m1": {"fines": 1.5}}}},
                       "initialization_actions": [{"env_type": "assistant", "func_name": "set_note",
                                                   "arguments": {"member_id": "m1", "note": "VIP"}}]},
     "evaluation_criteria": {
         "actions": [{"action_id": "a0", "name": "get_member", "arguments": {"member_id": "m1"}},
                     {"action_id": "a1", "name": "lend_book", "arguments": {"member_id": "m1", "book_id": "b1"}},
                     {"action_id": "a2", "name": "lend_book", "arguments": {"member_id": "m1", "book_id": "b2"}}],
         "env_assertions": [{"env_type": "assistant", "func_name": "assert_loans",
                             "arguments": {"member_id": "m1", "expected": 1}}],
         "reward_basis": ["DB", "ENV_ASSERTION"]}},
    {"id": "overdue", "user_scenario": {"instructions": "You are Ben (m2). Your phone says a loan is overdue. "
                                                         "Clear the notification once the fine is paid."},
     "initial_state": {"message_history": [
         {"role": "user", "content": "Hi, I'm Ben, member m2."},
         {"role": "assistant", "content": None, "tool_calls": [
             {"id": "h1", "name": "charge_fine", "arguments": {"member_id": "m2", "amount": 0.5, "reason": "late"}}]},
         {"role": "tool", "id": "h1", "content": "{}"},
         {"role": "assistant", "content": "I charged a 0.5 late fee. Anything else?"},
         {"role": "user", "content": "My phone still shows a warning, and Emma is damaged."}]},
     "evaluation_criteria": {
         "actions": [{"action_id": "o1", "name": "charge_fine", "arguments": {"member_id": "m2", "amount": 3.0, "reason": "damage"}},
                     {"action_id": "o2", "requestor": "user", "name": "clear_notifications", "arguments": {}}],
         "nl_assertions": ["The agent tells Ben the damage fine is 3."],
         "reward_basis": ["DB", "NL_ASSERTION"]}},
]


@pytest.fixture
def tau2_domain(tmp_path, monkeypatch):
    root = tmp_path / "data" / "tau2" / "domains" / "library"
    root.mkdir(parents=True)
    (root / "db.json").write_text(json.dumps(DB))
    (root / "user_db.json").write_text(json.dumps(USER_DB))
    (root / "policy.md").write_text("# Library policy\nLend only books with copies left.\n")
    (root / "tasks.json").write_text(json.dumps(TASKS))
    (root / "split_tasks.json").write_text(json.dumps({"train": ["lend"], "test": ["overdue"]}))
    (root / "tools.py").write_text(TOOLS_PY)
    # the user tools import the marks from a module, as tau2's user_tools import tau2.environment.toolkit
    marks = tmp_path / "marks"
    marks.mkdir()
    (marks / "traject_test_tau2_marks.py").write_text(TOOLS_PY.split("class Book")[0])
    monkeypatch.syspath_prepend(str(marks))
    (root / "user_tools.py").write_text(USER_TOOLS_PY)
    yield root
    sys.modules.pop("traject_test_tau2_marks", None)


def tau2_reference_hashes(root, task):
    """tau2's evaluator, written out independently: build the databases from the files with their
    models, merge initialization data, run initialization actions and the mutating calls of the
    message history, replay the gold actions (errors swallowed), hash model_dump() as sorted JSON."""
    def load(path, name):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    tools, user_tools = load(root / "tools.py", "ref_tools"), load(root / "user_tools.py", "ref_user_tools")
    raw = json.loads((root / "db.json").read_text())
    init = task.get("initial_state") or {}
    data = (init.get("initialization_data") or {}).get("agent_data")
    if data:
        for member_id, update in data["members"].items():
            raw["members"][member_id].update(update)
    kit = tools.LibraryTools(tools.LibraryDB.model_validate(raw))
    user_kit = user_tools.LibraryUserTools(user_tools.UserDB.model_validate(json.loads((root / "user_db.json").read_text())))
    for call in init.get("initialization_actions") or []:
        getattr(kit, call["func_name"])(**call["arguments"])
    for message in init.get("message_history") or []:
        for call in message.get("tool_calls") or []:
            getattr(kit, call["name"])(**call["arguments"])
    for action in task["evaluation_criteria"]["actions"]:
        try:
            target = user_kit if action.get("requestor") == "user" else kit
            getattr(target, action["name"])(**action["arguments"])
        except Exception:  # noqa: BLE001 - tau2 logs and goes on
            pass

    def digest(db):
        return hashlib.sha256(json.dumps(db.model_dump(), sort_keys=True, default=str).encode()).hexdigest()

    return digest(kit.db), digest(user_kit.db)


def test_loads_tau2_layout_and_replays_gold_to_tau2s_database(tau2_domain):
    domain = load_domain(tau2_domain)
    assert domain.name == "library" and domain.db_model.__name__ == "LibraryDB"
    assert domain.user_toolkit_cls.__name__ == "LibraryUserTools" and domain.splits["test"] == ["overdue"]
    for raw, task in zip(TASKS, domain.tasks, strict=True):
        agent_hash, user_hash = gold_state(domain, task).hashes()
        assert (agent_hash, user_hash) == tau2_reference_hashes(tau2_domain, raw)
    state = DomainState(domain)
    assert state.replay(domain.tasks[0].criteria.actions)[2] == "ValueError: No copies left"  # swallowed, as tau2 does
    tasks = traject.load_tasks("customer_service", path=tau2_domain, split="test")
    assert [t.id for t in tasks] == ["library/overdue"]
    history = tasks[0].prompt
    assert [m.role for m in history] == ["user", "assistant", "tool", "assistant", "user"]
    assert history[2].name == "charge_fine" and history[1].tool_calls[0].id == history[2].tool_call_id


@pytest.mark.anyio
async def test_episode_on_a_tau2_domain(tau2_domain, chat_server):
    [task] = traject.load_tasks("customer_service", path=tau2_domain, split="train")
    customer = chat_server(["Hi, I'd like to borrow Dune. I'm m1.", "Yes.", "Thanks! ###STOP###"])
    script = [Message.assistant(tool_calls=[ToolCall(name="get_member", arguments={"member_id": "m1"})]),
              Message.assistant("Lend Dune to you, m1 - confirm?"),
              Message.assistant(tool_calls=[ToolCall(name="lend_book", arguments={"member_id": "m1", "book_id": "b1"})]),
              Message.assistant("Done, enjoy Dune.")]
    env = traject.make("customer_service", user_base_url=customer.url)
    traj = await AgentLoop(ScriptedPolicy(script)).run(env, task)
    assert traj.status is Status.COMPLETED and traj.reward.total == 1.0
    assert traj.reward.components["ENV_ASSERTION"] == 1.0 and traj.steps[-1].info["env_assertions"] == [True]
    assert "Lend only books with copies left." in traj.messages[0].text  # the domain's policy is the system prompt
    member = json.loads(traj.steps[0].observations[0].text)
    assert member["fines"] == 1.5 and member["note"] == "VIP"  # initialization data and actions applied
    # a second lend would fail the env assertion and the DB check
    bad = script[:3] + [Message.assistant(tool_calls=[ToolCall(name="lend_book", arguments={"member_id": "m1", "book_id": "b1"})]),
                        Message.assistant("Done.")]
    customer2 = chat_server(["Hi, borrow Dune, m1.", "Yes.", "ok", "###STOP###"])
    traj = await AgentLoop(ScriptedPolicy(bad)).run(traject.make("customer_service", user_base_url=customer2.url), task)
    assert traj.reward.total == 0.0 and traj.reward.components["ENV_ASSERTION"] == 0.0


@pytest.mark.anyio
async def test_history_user_tools_and_nl_assertions_with_a_judge(tau2_domain, chat_server):
    [task] = traject.load_tasks("customer_service", path=tau2_domain, split="test")
    customer = chat_server([ScriptedReply(tool_calls=[("clear_notifications", {})]), "Cleared it, thanks. ###STOP###"])
    judge = chat_server([json.dumps({"results": [{"assertion": "The agent tells Ben the damage fine is 3.",
                                                  "reasoning": "it does", "met": True}]})])
    # ScriptedPolicy counts the assistant messages already in the conversation: the history has two
    script = [Message.assistant("(history)")] * 2 + [Message.assistant(tool_calls=[ToolCall(name="charge_fine", arguments={
        "member_id": "m2", "amount": 3.0, "reason": "damage"})]),
              Message.assistant("I charged a damage fine of 3. You can clear the warning on your phone now.")]
    env = traject.make("customer_service", user_base_url=customer.url, judge_base_url=judge.url)
    traj = await AgentLoop(ScriptedPolicy(script)).run(env, task)
    assert traj.status is Status.COMPLETED, traj.error
    assert traj.reward.components == {"customer_service": 1.0, "DB": 1.0, "NL_ASSERTION": 1.0}, traj.reward.info
    # the conversation continued from the task's history; the judge read it whole
    assert traj.messages[1].text == "Hi, I'm Ben, member m2." and "damage fine of 3" in judge.requests[0].messages[-1]["content"]
    # the user's history is in the user model's view too (as its own past messages)
    assert customer.requests[0].messages[1] == {"role": "assistant", "content": "Hi, I'm Ben, member m2."}
    # without a judge the NL basis cannot be scored: a failed reward, not a 0
    customer2 = chat_server([ScriptedReply(tool_calls=[("clear_notifications", {})]), "###STOP###"])
    traj = await AgentLoop(ScriptedPolicy(script)).run(traject.make("customer_service", user_base_url=customer2.url), task)
    assert traj.reward.failed and "judge" in traj.reward.error


def test_bad_domains_name_the_file(tau2_domain, tmp_path):
    with pytest.raises(DomainError, match="not a directory"):
        load_domain(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DomainError, match=r"empty: no db.json"):
        load_domain(empty)
    tasks_path = tau2_domain / "tasks.json"
    tasks_path.write_text(json.dumps([{"id": "x", "user_scenario": {"instructions": "hi"},
                                       "evaluation_criteria": {"reward_basis": ["DB", "VIBES"]}}]))
    with pytest.raises(DomainError, match=r"tasks.json: task 0 is not a tau2 task: field 'evaluation_criteria.reward_basis.1'"):
        load_domain(tau2_domain)
    tasks_path.write_text(json.dumps([{"id": "x", "user_scenario": {"instructions": "hi"},
                                       "evaluation_criteria": {"actions": [{"name": "burn_books", "arguments": {}}]}}]))
    with pytest.raises(DomainError, match="gold action 'burn_books'"):
        load_domain(tau2_domain)
    tasks_path.write_text("[{")
    with pytest.raises(DomainError, match=r"tasks.json: not valid JSON"):
        load_domain(tau2_domain)
    tasks_path.write_text(json.dumps(TASKS))
    (tau2_domain / "db.json").write_text(json.dumps({"books": {}}))
    with pytest.raises(DomainError, match=r"db.json: does not fit LibraryDB"):
        load_domain(tau2_domain)
    (tau2_domain / "db.json").write_text(json.dumps(DB))
    (tau2_domain / "tools.py").write_text(textwrap.dedent("class Nothing:\n    pass\n"))
    with pytest.raises(DomainError, match=r"tools.py: no toolkit class"):
        load_domain(tau2_domain)
    (tau2_domain / "tools.py").unlink()
    with pytest.raises(DomainError, match="has no tools: put a tools.py"):
        load_domain(tau2_domain)


def test_no_split_loads_every_task_and_a_chosen_subset_warns(tau2_domain, recwarn):
    tasks = traject.load_tasks("customer_service", path=tau2_domain)
    assert [t.id for t in tasks] == ["library/lend", "library/overdue"] and not recwarn.list
    # tau2's split file with a 'base' split smaller than tasks.json: all load, and the warning says so
    (tau2_domain / "split_tasks.json").write_text(json.dumps({"base": ["lend"], "train": ["lend"], "test": ["overdue"]}))
    from traject.environments.customer_service.tasks import domain_tasks

    domain = load_domain(tau2_domain)
    with pytest.warns(UserWarning, match=r"all 2 tasks of tasks.json load; tau2's default split 'base' has 1"):
        assert len(domain_tasks(domain)) == 2
    assert [t.id for t in domain_tasks(domain, "base")] == ["library/lend"]
    # a split asked of a domain without a split file: every task, loudly
    (tau2_domain / "split_tasks.json").unlink()
    with pytest.warns(UserWarning, match=r"has no split_tasks.json: split 'train' loads all 2 tasks"):
        assert len(domain_tasks(load_domain(tau2_domain), "train")) == 2


def _eval_gold(tau2_domain, tmp_path):
    import os
    import subprocess
    from pathlib import Path

    from traject.eval.task_file import write_task_file

    task_file = tmp_path / "library.jsonl"
    write_task_file(task_file, traject.load_tasks("customer_service", path=tau2_domain))
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path / "marks")]), "COLUMNS": "120"}
    env.pop("TRAJECT_USER_BASE_URL", None)  # no user model anywhere
    run = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "traject", "eval", "--env", "customer_service", "--policy", "gold",
                           "--tasks", str(task_file), "-o", str(run), "-q"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (run / "trajectories.jsonl").read_text().splitlines()
    return {t["task_id"]: t for t in map(json.loads, lines)}


def test_gold_replay_command_needs_no_user_model_and_records_tau2s_hashes(tau2_domain, tmp_path):
    trajs = _eval_gold(tau2_domain, tmp_path)
    assert set(trajs) == {"library/lend", "library/overdue"}
    for raw in TASKS:
        traj = trajs[f"library/{raw['id']}"]
        assert traj["status"] == "completed", traj.get("error")
        last = traj["steps"][-1]["info"]
        agent_hash, user_hash = tau2_reference_hashes(tau2_domain, raw)
        # tau2's own hashes, beside traject's: the replayed state is tau2's gold state
        assert (last["tau2_db_hash"], last["tau2_gold_db_hash"]) == (agent_hash, agent_hash)
        assert (last["tau2_user_db_hash"], last["tau2_gold_user_db_hash"]) == (user_hash, user_hash)
        assert last["db_match"] is True and last["db_state_hash"] == last["gold_state_hash"]
    lend = trajs["library/lend"]
    calls = [c["name"] for s in lend["steps"] for c in s["action"]["tool_calls"]]
    assert calls == ["get_member", "lend_book", "lend_book"] and lend["reward"]["total"] == 1.0
    # the overdue task's gold has the user clear the phone: the model-free customer did it
    overdue = trajs["library/overdue"]
    assert overdue["steps"][-1]["info"]["user_state"]["done_reason"] == "gold_replay_finished"
    assert overdue["reward"]["failed"]  # NL_ASSERTION needs a judge: failed, never 0


@pytest.mark.anyio
async def test_hashing_is_once_per_write_on_a_large_database(tau2_domain, monkeypatch):
    big = json.loads(json.dumps(DB))
    big["books"].update({f"x{i}": {"book_id": f"x{i}", "title": f"Volume {i} " + "lorem ipsum " * 8, "copies": 3}
                         for i in range(20_000)})
    (tau2_domain / "db.json").write_text(json.dumps(big))
    assert (tau2_domain / "db.json").stat().st_size > 2_000_000
    from traject.environments.customer_service import state as state_module
    from traject.environments.customer_service.tasks import gold_hashes, task_domain
    from traject.rewards.verifiers import db_state

    [task] = traject.load_tasks("customer_service", path=tau2_domain, split="train")
    gold_hashes(*task_domain(task))  # memoised per task: not part of the episode's cost
    counts = {"traject": 0, "tau2": 0}
    real_canonical, real_db_hash = db_state.canonical_json, state_module.db_hash

    def canonical(state):
        counts["traject"] += 1
        return real_canonical(state)

    def tau2_hash(db):
        counts["tau2"] += 1
        return real_db_hash(db)

    monkeypatch.setattr(db_state, "canonical_json", canonical)
    monkeypatch.setattr(state_module, "db_hash", tau2_hash)
    reads = [Message.assistant(tool_calls=[ToolCall(name="get_member", arguments={"member_id": "m1"})])] * 5
    script = [*reads, Message.assistant(tool_calls=[ToolCall(name="lend_book", arguments={"member_id": "m1",
                                                                                        "book_id": "b1"})]),
              *reads, Message.assistant("Done.")]
    env = traject.make("customer_service", user="gold")
    traj = await AgentLoop(ScriptedPolicy(script)).run(env, task)
    assert traj.status is Status.COMPLETED and len(traj.steps) == 12
    # 12 steps, one write: the env hashed once at the first step and once after the write (tau2's
    # hash covers the user's database too where it has its own); the DB reward hashed its gold
    # replay once, at the end. Per step it would be 12 + 1 and 24.
    assert counts["traject"] == 2 + 1 and counts["tau2"] == 2 * 2, counts
    assert traj.steps[-1].info["db_match"] is True and traj.reward.total == 1.0
