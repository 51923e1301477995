"""Bought-together association between products from order co-occurrence (sparse, pruned, top-N per product)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from connector.recommend_settings import CrossSellSettings

# Products per block of the X.T @ X product: bounds the peak memory of the co-occurrence counts.
_BLOCK_PAIRS = 40_000_000


def top_n_per_row(matrix: sp.csr_matrix, n: int, dtype: type = np.float32) -> sp.csr_matrix:
    """Keep the n largest entries of every row of a CSR matrix, as `dtype`."""
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    lengths = np.diff(matrix.indptr)
    if n <= 0 or matrix.nnz == 0:
        return sp.csr_matrix(matrix.shape, dtype=dtype)
    if lengths.max(initial=0) <= n:
        return matrix.astype(dtype)
    rows = np.repeat(np.arange(matrix.shape[0]), lengths)
    order = np.lexsort((-matrix.data, rows))
    rank = np.arange(matrix.nnz) - np.repeat(matrix.indptr[:-1], lengths)
    keep = order[rank < n]  # `order` is grouped by row, so rank applies to its positions
    return sp.csr_matrix(
        (matrix.data[keep].astype(dtype), (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )


def incidence(order_codes: np.ndarray, product_codes: np.ndarray, n_orders: int, n_products: int) -> sp.csr_matrix:
    """Binary order x product matrix (duplicate lines of a product in one order count once)."""
    x = sp.csr_matrix(
        (np.ones(len(order_codes), dtype=np.float32), (order_codes, product_codes)), shape=(n_orders, n_products)
    )
    x.data[:] = 1.0
    return x


def bought_together(x: sp.csr_matrix, settings: CrossSellSettings) -> sp.csr_matrix:
    """Product x product similarity: shrunk cosine of co-occurrence, min support, top-N per product."""
    n_products = x.shape[1]
    sizes = np.diff(x.indptr)
    x = x[(sizes >= 2) & (sizes <= settings.max_basket_size)]
    orders_per_product = np.asarray(x.sum(axis=0)).ravel()
    kept = np.flatnonzero(orders_per_product >= max(settings.min_product_orders, settings.min_support))
    if len(kept) == 0:
        return sp.csr_matrix((n_products, n_products), dtype=np.float32)
    xk = x[:, kept].tocsc()
    xk_rows = xk.T.tocsr()  # product x order
    counts = orders_per_product[kept]
    sqrt_counts = np.sqrt(counts)
    # Estimated pair volume per product decides the block size.
    pairs_per_product = np.asarray(xk_rows @ np.asarray(x[:, kept].sum(axis=1)).ravel()).ravel()
    blocks: list[sp.csr_matrix] = []
    start = 0
    cumulative = np.cumsum(pairs_per_product)
    while start < len(kept):
        base = cumulative[start - 1] if start else 0.0
        stop = int(np.searchsorted(cumulative, base + _BLOCK_PAIRS, side="right"))
        stop = max(stop, start + 1)
        co = (xk_rows[start:stop] @ xk).tocsr()  # block of products x all kept products
        co.data[co.data < settings.min_support] = 0.0
        _zero_block_diagonal(co, start)
        co.eliminate_zeros()
        rows = np.repeat(np.arange(start, stop), np.diff(co.indptr))
        support = co.data
        co.data = (support / (sqrt_counts[rows] * sqrt_counts[co.indices])) * (
            support / (support + settings.shrinkage)
        )
        blocks.append(top_n_per_row(co, settings.neighbors))
        start = stop
    similar = sp.vstack(blocks).tocoo()
    return sp.csr_matrix(
        (similar.data.astype(np.float32), (kept[similar.row], kept[similar.col])), shape=(n_products, n_products)
    )


def _zero_block_diagonal(block: sp.csr_matrix, start: int) -> None:
    """Zero the self-pairs of a row block that starts at product `start`."""
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    block.data[block.indices == rows + start] = 0.0
