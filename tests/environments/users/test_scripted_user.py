import pytest

from traject.agents import AgentLoop, ScriptedPolicy
from traject.environments import ToolEnv
from traject.environments.users import ScriptedUser
from traject.types import Message, Status, Task


@pytest.mark.anyio
async def test_reference_turns_from_the_task_drive_an_episode():
    task = Task(id="cm2", data={"user_turns": ["Book a table for two.", "At 8pm, please."]})
    env = ToolEnv([], name="chat", user=ScriptedUser(), max_turns=5)
    traj = await AgentLoop(ScriptedPolicy([Message.assistant("What time?"), Message.assistant("Booked."),
                                           Message.assistant("Anything else?")])).run(env, task)
    users = [m.text for m in traj.messages if m.role == "user"]
    assert users == ["Book a table for two.", "At 8pm, please."]
    assert traj.status is Status.COMPLETED and traj.num_turns == 2  # the user ran out of turns
    assert traj.steps[0].info["user_state"] == {"user_turns": 2, "turns_left": 0}


@pytest.mark.anyio
async def test_task_without_turns_names_the_field():
    with pytest.raises(ValueError, match=r"data\['user_turns'\]"):
        await ScriptedUser().reset(Task(id="x"))
