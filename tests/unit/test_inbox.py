"""The Socket.IO connection's inbox (``sio.Inbox``): asyncio.Queue's put_nowait and get for its one reader."""

import asyncio

import pytest

from bot.probe.sio import Inbox


def test_inbox__items_come_out_in_order_and_a_waiting_reader_wakes_for_the_next():
    async def scenario() -> list[object]:
        inbox = Inbox()
        inbox.put_nowait("first")
        inbox.put_nowait("second")
        got = [await inbox.get(), await inbox.get()]
        reader = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        assert not reader.done()  # nothing to read: it waits
        asyncio.get_running_loop().call_later(0.01, inbox.put_nowait, "later")
        got.append(await asyncio.wait_for(reader, 1))
        return got

    assert asyncio.run(scenario()) == ["first", "second", "later"]


def test_inbox__a_cancelled_wait_takes_nothing_and_the_next_reader_gets_it():
    async def scenario() -> object:
        inbox = Inbox()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await inbox.get()
        inbox.put_nowait("kept")
        inbox.put_nowait("after")
        return await inbox.get(), await inbox.get()

    assert asyncio.run(scenario()) == ("kept", "after")


def test_inbox__items_put_in_one_callback_wake_the_reader_once_and_are_all_read():
    async def scenario() -> list[object]:
        inbox = Inbox()
        reader = asyncio.create_task(inbox.get())
        await asyncio.sleep(0)
        for item in range(3):
            inbox.put_nowait(item)  # the reader's future is already done after the first
        return [await reader, await inbox.get(), await inbox.get()]

    assert asyncio.run(scenario()) == [0, 1, 2]
