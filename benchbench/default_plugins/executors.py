"""Built-in executors (where units run), registered through the public hook like any plugin."""

from benchbench import hookimpl
from benchbench.engine.executors.inline import Inline
from benchbench.engine.executors.local import LocalPool
from benchbench.engine.executors.ray_tasks import RayTasks


@hookimpl
def register_executors(register):
    register("inline", Inline)
    register("local", LocalPool)
    register("ray", RayTasks)
