import tracemalloc

import numpy as np
import pytest

from pipelines.forecasting.windows import to_windows


# The two classic windowing loops (convertToMatrix, format_data), written plainly, as the reference.
def convertToMatrix(data, step):
    X, Y = [], []
    for i in range(len(data) - step):
        d = i + step
        X.append(data[i:d,])
        Y.append(data[d,])
    return np.array(X), np.array(Y)


def format_data(data, length_of_sequence=2):
    X, Y = [], []
    for i in range(len(data) - length_of_sequence):
        a = data[i : i + length_of_sequence]
        b = data[i + length_of_sequence]
        a = np.reshape(a, (len(a), 1))
        X.append(a)
        Y.append(b)
    rnn_input = np.array(X)
    rnn_output = np.array(Y)
    return rnn_input, rnn_output


@pytest.mark.parametrize("n,step", [(50, 1), (100, 4), (37, 12), (13, 12)])
def test_matches_convert_to_matrix(n, step):
    data = np.random.default_rng(n + step).normal(size=n)
    X_ref, Y_ref = convertToMatrix(data, step)
    X, y = to_windows(data, step)
    np.testing.assert_array_equal(X[:, :, 0], X_ref)
    np.testing.assert_array_equal(y[:, 0], Y_ref)


@pytest.mark.parametrize("n,seq", [(16, 2), (40, 3), (200, 24)])
def test_matches_format_data(n, seq):
    data = np.random.default_rng(seq).normal(size=n)
    X_ref, Y_ref = format_data(data, seq)
    X, y = to_windows(data, seq)
    np.testing.assert_array_equal(X, X_ref)
    np.testing.assert_array_equal(y[:, 0], Y_ref)


def test_horizon_stride_and_features():
    data = np.arange(40, dtype=float).reshape(20, 2)
    X, y = to_windows(data, lookback=3, horizon=2, stride=4, target=1)
    assert X.shape == (4, 3, 2) and y.shape == (4, 2)
    for i in range(4):
        np.testing.assert_array_equal(X[i], data[i * 4 : i * 4 + 3])
        np.testing.assert_array_equal(y[i], data[i * 4 + 3 : i * 4 + 5, 1])


def test_windows_are_read_only_views_that_allocate_nothing_of_their_size():
    data = np.random.default_rng(0).normal(size=1_000_000)
    tracemalloc.start()
    try:
        X, y = to_windows(data, lookback=24, horizon=12)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.shares_memory(X, data) and np.shares_memory(y, data)
    assert X.shape == (1_000_000 - 35, 24, 1) and y.shape == (1_000_000 - 35, 12)
    assert not X.flags.writeable and not y.flags.writeable
    assert peak < 100_000, peak  # a copy of X would be 190 MB, one of the data 8 MB


def test_too_short_names_the_numbers():
    with pytest.raises(ValueError, match="series has 5 values; lookback 4 \\+ horizon 2 needs at least 6"):
        to_windows(np.zeros(5), 4, 2)
