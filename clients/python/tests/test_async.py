"""What only an AsyncClient does: `async with`, async iteration, many calls in flight at once."""

from __future__ import annotations

import asyncio
import random

import pytest

import dendrite

from .conftest import Server


@pytest.mark.asyncio
async def test_concurrent_calls_on_one_async_client(server: Server, name: str) -> None:
    rng = random.Random(11)
    codes = {f"n{i}": rng.sample(range(2048), 40) for i in range(20)}
    async with dendrite.AsyncClient(server.url) as client:
        await client.create_space(name, input_size=2048, active_bits=40)
        await asyncio.gather(*(client.store(name, neuron, active) for neuron, active in codes.items()))
        answers = await asyncio.gather(*(client.query(name, active) for active in codes.values()))
        assert [answer.matches[0].neuron for answer in answers] == list(codes)
        assert [neuron.name async for neuron in client.iter_neurons(name, page_size=7)] == sorted(codes)
    # Closed with the block: its connections are gone.
    with pytest.raises(RuntimeError):
        await client.health()


def test_a_closed_client_refuses_calls(server: Server) -> None:
    with dendrite.Client(server.url) as client:
        assert client.health().status == "ok"
    with pytest.raises(RuntimeError):
        client.health()
