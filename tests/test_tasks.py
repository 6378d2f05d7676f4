from autoagent.agent.tasks import TaskList


def make(*texts: str) -> TaskList:
    tasks = TaskList()
    tasks.add(texts)
    return tasks


def test_add_skips_blanks_and_duplicates_of_open_tasks() -> None:
    tasks = make("Find sources", "Write report")
    added = tasks.add(["find sources!", "", "  ", "Check facts", "check   facts"])
    assert [t.text for t in added] == ["Check facts"]
    assert [t.id for t in tasks.open] == [1, 2, 3]


def test_reorder_keeps_every_task_and_invents_none() -> None:
    tasks = make("a", "b", "c", "d")
    tasks.reorder([3, 99, 1, 3, -5])
    assert [t.text for t in tasks.open] == ["c", "a", "b", "d"]
    tasks.reorder([])
    assert [t.text for t in tasks.open] == ["c", "a", "b", "d"]


def test_plan_numbers_new_tasks_as_listed_and_skips_what_was_not_added() -> None:
    tasks = make("a", "b")  # ids 1 and 2; new tasks are told to count on from 3
    # "A" (3) repeats an open task and is skipped; "c" (4) becomes 3 and "d" (5) becomes 4.
    added, changed = tasks.plan(["A", "c", "d"], [5, 3, 2, 4, 9])
    assert [(t.id, t.text) for t in added] == [(3, "c"), (4, "d")]
    assert [t.text for t in tasks.open] == ["d", "b", "c", "a"] and changed
    assert tasks.plan([], []) == ([], False)


def test_complete_moves_a_task_to_done_with_its_result() -> None:
    tasks = make("a", "b")
    tasks.complete(1, "did a")
    assert tasks.current is not None and tasks.current.text == "b"
    assert tasks.done[0].result == "did a"
    tasks.add(["a"])  # a done task may come back as new work
    assert [t.text for t in tasks.open] == ["b", "a"]


def test_round_trip() -> None:
    tasks = make("a", "b")
    tasks.complete(2, "r")
    copy = TaskList.model_validate_json(tasks.model_dump_json())
    assert copy == tasks
    assert copy.add(["new"])[0].id == 3


def test_the_open_list_is_bounded() -> None:
    tasks = TaskList()
    tasks.add(f"task {i}" for i in range(80))
    assert len(tasks.open) == 50
    tasks.complete(1, "done")
    assert [t.text for t in tasks.add(["one more", "and another"])] == ["one more"]
