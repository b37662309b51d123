"""The cloud trading platform's mid-market-rate (MMR) clearing, as a pure batched function.

One clearing settles one time step of a community of ``N`` prosumers. Each prosumer brings
its net load for the step (energy in kWh, ``> 0`` a deficit it must buy, ``< 0`` a surplus it
offers). With the grid's import price ``b`` (what a household pays the retailer) and export
price ``s <= b`` (the feed-in tariff), the platform trades inside the community at the mid
rate ``p = (b + s) / 2`` (Long et al. 2017, "Peer-to-peer energy trading in a community
microgrid"). With ``G`` the total surplus and ``D`` the total deficit of the step:

* ``G >= D`` (surplus community): every buyer gets all of its deficit from peers at ``p``;
  sellers share ``D`` pro rata at ``p`` and export the rest ``G - D`` at ``s``.
* ``G < D`` (deficit community): every seller sells all of its surplus to peers at ``p``;
  buyers share ``G`` pro rata at ``p`` and import the rest ``D - G`` at ``b``.

Pro rata means: prosumer ``i`` with deficit ``d_i`` buys ``d_i * min(G, D) / D`` from peers and
``d_i * (1 - min(G, D) / D)`` from the grid; a seller with surplus ``g_i`` sells
``g_i * min(G, D) / G`` to peers and exports the rest. Both cases are then one formula, which
is how :func:`clear_mid_market` computes them (no branch, no host synchronisation).

What holds, and what the tests check on random communities:

* energy balance: ``sum(internal_buy) == sum(internal_sell)`` and
  ``sum(grid_import) - sum(grid_export) == sum(net_load)``;
* money balance: ``sum(bill) == sum(grid_import) * b - sum(grid_export) * s`` (the platform
  neither earns nor loses money);
* individual rationality: every prosumer's bill is at most its
  :func:`grid_only_bill` (what it would pay trading with the grid alone), as long as
  ``s <= b``.

Shapes: ``net_load`` is ``(*B, N)``; prices are per community and step, broadcastable to
``(*B,)`` (a Python float, a 0-d tensor, or ``(*B,)``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

__all__ = ["MarketClearing", "clear_mid_market", "grid_only_bill", "mid_market_rate"]

PriceLike = torch.Tensor | float


class MarketClearing(NamedTuple):
    """The result of one mid-market-rate clearing (see :func:`clear_mid_market`).

    All energies are in the unit of the ``net_load`` given (kWh for the community env), all
    money in that energy unit times the price unit. ``*B`` are the leading batch dims and
    ``N`` the number of prosumers.

    Attributes:
        internal_buy (torch.Tensor): ``(*B, N)`` energy each prosumer buys from peers (``>= 0``).
        internal_sell (torch.Tensor): ``(*B, N)`` energy each prosumer sells to peers (``>= 0``).
        grid_import (torch.Tensor): ``(*B, N)`` energy each prosumer imports from the grid
            through the platform (``>= 0``).
        grid_export (torch.Tensor): ``(*B, N)`` energy each prosumer exports to the grid
            through the platform (``>= 0``).
        bill (torch.Tensor): ``(*B, N)`` what each prosumer pays (negative: receives).
        price (torch.Tensor): ``(*B,)`` the mid-market rate ``(b + s) / 2``.
        buy_price (torch.Tensor): ``(*B,)`` the average price buyers pay per unit of deficit
            (between ``price`` and ``b``; ``price`` when there is no deficit).
        sell_price (torch.Tensor): ``(*B,)`` the average price sellers receive per unit of
            surplus (between ``s`` and ``price``; ``price`` when there is no surplus).
        supply (torch.Tensor): ``(*B,)`` total surplus offered, ``G``.
        demand (torch.Tensor): ``(*B,)`` total deficit asked, ``D``.

    Examples:
        >>> out = clear_mid_market(torch.tensor([2.0, -1.0]), 0.3, 0.1)
        >>> isinstance(out, MarketClearing), out._fields[:2]
        (True, ('internal_buy', 'internal_sell'))
    """

    internal_buy: torch.Tensor
    internal_sell: torch.Tensor
    grid_import: torch.Tensor
    grid_export: torch.Tensor
    bill: torch.Tensor
    price: torch.Tensor
    buy_price: torch.Tensor
    sell_price: torch.Tensor
    supply: torch.Tensor
    demand: torch.Tensor


def _as_price(price: PriceLike, like: torch.Tensor, name: str) -> torch.Tensor:
    """Price as a tensor of shape ``(*B, 1)`` (broadcast against ``like`` of shape ``(*B, N)``)."""
    price = torch.as_tensor(price, dtype=like.dtype, device=like.device)
    batch = like.shape[:-1]
    try:
        price = torch.broadcast_to(price, batch)
    except RuntimeError:
        raise ValueError(
            f"clear_mid_market expected {name} broadcastable to the batch shape "
            f"{tuple(batch)} of net_load {tuple(like.shape)}, got shape {tuple(price.shape)}"
        ) from None
    return price.unsqueeze(-1)


def mid_market_rate(buy_price: PriceLike, sell_price: PriceLike) -> torch.Tensor:
    """The mid-market rate ``(buy_price + sell_price) / 2``.

    Args:
        buy_price (torch.Tensor | float): grid import price ``b``, any shape.
        sell_price (torch.Tensor | float): grid export price ``s``, broadcastable with ``b``.

    Returns:
        torch.Tensor: the rate, of the broadcast shape.

    Examples:
        >>> mid_market_rate(torch.tensor([0.30, 0.20]), 0.10)
        tensor([0.2000, 0.1500])
    """
    return (torch.as_tensor(buy_price) + torch.as_tensor(sell_price)) / 2


def grid_only_bill(
    net_load: torch.Tensor, buy_price: PriceLike, sell_price: PriceLike
) -> torch.Tensor:
    """What each prosumer pays trading with the grid alone (no community market).

    ``bill_i = max(net_i, 0) * b - max(-net_i, 0) * s``.

    Args:
        net_load (torch.Tensor): ``(*B, N)`` net load per prosumer (``> 0`` deficit).
        buy_price (torch.Tensor | float): grid import price, broadcastable to ``(*B,)``.
        sell_price (torch.Tensor | float): grid export price, broadcastable to ``(*B,)``.

    Returns:
        torch.Tensor: ``(*B, N)`` the bills (negative: the prosumer is paid).

    Examples:
        >>> grid_only_bill(torch.tensor([2.0, -1.0]), 0.3, 0.1)
        tensor([ 0.6000, -0.1000])
    """
    if net_load.ndim < 1:
        raise ValueError(
            f"grid_only_bill expected net_load of shape (*B, N), got {tuple(net_load.shape)}"
        )
    b = _as_price(buy_price, net_load, "buy_price")
    s = _as_price(sell_price, net_load, "sell_price")
    return net_load.clamp_min(0) * b - (-net_load).clamp_min(0) * s


def clear_mid_market(
    net_load: torch.Tensor,
    buy_price: PriceLike,
    sell_price: PriceLike,
    *,
    validate: bool = False,
) -> MarketClearing:
    """Clears one step of the community market at the mid-market rate (see the module doc).

    A pure function, batched over any leading dims, differentiable almost everywhere, with
    no host synchronisation (unless ``validate=True``).

    Args:
        net_load (torch.Tensor): ``(*B, N)`` float net load per prosumer for the step
            (``> 0``: deficit to buy, ``< 0``: surplus to sell).
        buy_price (torch.Tensor | float): grid import price ``b``, broadcastable to ``(*B,)``.
        sell_price (torch.Tensor | float): grid export price ``s``, broadcastable to
            ``(*B,)``; ``s <= b`` is assumed (otherwise the mid rate is still ``(b + s) / 2``
            but individual rationality no longer holds).

    Keyword Args:
        validate (bool): check ``sell_price <= buy_price`` and a finite ``net_load`` and raise
            ``ValueError`` otherwise (one host synchronisation). Defaults to ``False``.

    Returns:
        MarketClearing: per-prosumer trades, grid exchange and bills ``(*B, N)``, and the
        per-community prices, supply and demand ``(*B,)``.

    Examples:
        >>> out = clear_mid_market(torch.tensor([3.0, -1.0, -1.0]), 0.30, 0.10)
        >>> out.internal_buy.tolist(), out.grid_import.tolist()  # 2 from peers, 1 from grid
        ([2.0, 0.0, 0.0], [1.0, 0.0, 0.0])
        >>> torch.allclose(out.bill, torch.tensor([0.7, -0.2, -0.2]))  # 2 * 0.2 + 1 * 0.3
        True
        >>> bool((out.bill <= grid_only_bill(torch.tensor([3.0, -1.0, -1.0]), 0.3, 0.1)).all())
        True
    """
    if not isinstance(net_load, torch.Tensor) or not net_load.is_floating_point():
        raise TypeError(
            f"clear_mid_market expected net_load to be a floating-point tensor of shape "
            f"(*B, N), got {type(net_load).__name__} "
            f"{getattr(net_load, 'dtype', '')}".rstrip()
        )
    if net_load.ndim < 1 or net_load.shape[-1] < 1:
        raise ValueError(
            f"clear_mid_market expected net_load of shape (*B, N) with N >= 1, got "
            f"{tuple(net_load.shape)}"
        )
    b = _as_price(buy_price, net_load, "buy_price")
    s = _as_price(sell_price, net_load, "sell_price")
    if validate:
        ok = torch.stack(((s <= b).all(), torch.isfinite(net_load).all())).tolist()
        if not ok[0]:
            raise ValueError(
                "clear_mid_market expected sell_price <= buy_price, got a sell price above "
                "the buy price"
            )
        if not ok[1]:
            raise ValueError("clear_mid_market expected a finite net_load, got inf or nan")
    p = (b + s) / 2

    deficit = net_load.clamp_min(0)
    surplus = (-net_load).clamp_min(0)
    demand = deficit.sum(-1, keepdim=True)  # D (*B, 1)
    supply = surplus.sum(-1, keepdim=True)  # G (*B, 1)
    traded = torch.minimum(supply, demand)
    # fraction of each deficit (surplus) served inside the community; 0/0 -> 0
    tiny = torch.finfo(net_load.dtype).tiny
    buy_frac = traded / demand.clamp_min(tiny)
    sell_frac = traded / supply.clamp_min(tiny)
    internal_buy = deficit * buy_frac
    internal_sell = surplus * sell_frac
    grid_import = deficit - internal_buy
    grid_export = surplus - internal_sell
    bill = (internal_buy - internal_sell) * p + grid_import * b - grid_export * s

    # average unit prices: buyers pay p on the traded part and b on the rest
    buy_price_avg = p + (1 - buy_frac) * (b - p) * (demand > 0)
    sell_price_avg = p - (1 - sell_frac) * (p - s) * (supply > 0)
    return MarketClearing(
        internal_buy=internal_buy,
        internal_sell=internal_sell,
        grid_import=grid_import,
        grid_export=grid_export,
        bill=bill,
        price=p.squeeze(-1),
        buy_price=buy_price_avg.squeeze(-1),
        sell_price=sell_price_avg.squeeze(-1),
        supply=supply.squeeze(-1),
        demand=demand.squeeze(-1),
    )
