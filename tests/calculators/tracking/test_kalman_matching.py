import numpy as np
import pytest
from metrics import iou

from calculators.tracking import KalmanBoxFilter, iou_matrix, linear_assignment, xyah_to_xyxy, xyxy_to_xyah


def test_xyah_round_trip():
    boxes = np.array([[10.0, 20.0, 50.0, 120.0], [0.1, 0.2, 0.3, 0.25]])
    xyah = xyxy_to_xyah(boxes)
    np.testing.assert_allclose(xyah[0], [30, 70, 0.4, 100])
    np.testing.assert_allclose(xyah_to_xyxy(xyah), boxes)


def test_initiate_has_the_measurement_and_no_velocity():
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([30.0, 70.0, 0.4, 100.0]))
    np.testing.assert_allclose(mean, [30, 70, 0.4, 100, 0, 0, 0, 0])
    assert np.all(np.diag(cov) > 0) and np.allclose(cov, cov.T)


def test_predict_grows_uncertainty_and_update_shrinks_it():
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([30.0, 70.0, 0.4, 100.0]))
    means, covs = kf.predict(mean[None], cov[None])
    assert np.all(np.diag(covs[0]) > np.diag(cov))
    new_mean, new_cov = kf.update(means[0], covs[0], np.array([34.0, 70.0, 0.4, 100.0]))
    assert 30 < new_mean[0] < 34  # pulled toward the measurement, not all the way
    assert new_mean[4] > 0  # and it learns the box moves right
    assert np.all(np.diag(new_cov)[:4] < np.diag(covs[0])[:4])


def test_learns_constant_velocity_and_predicts_ahead():
    kf = KalmanBoxFilter()
    mean, cov = kf.initiate(np.array([100.0, 50.0, 0.5, 80.0]))
    for step in range(1, 30):
        (mean,), (cov,) = kf.predict(mean[None], cov[None])
        mean, cov = kf.update(mean, cov, np.array([100.0 + 3 * step, 50.0 - step, 0.5, 80.0]))
    assert mean[4] == pytest.approx(3.0, abs=0.05) and mean[5] == pytest.approx(-1.0, abs=0.05)
    means, covs = mean[None], cov[None]
    for _ in range(5):  # five frames without a measurement
        means, covs = kf.predict(means, covs)
    assert means[0, 0] == pytest.approx(100 + 3 * 34, abs=0.5)
    assert means[0, 1] == pytest.approx(50 - 34, abs=0.5)
    assert means[0, 3] == pytest.approx(80, abs=0.5)


def test_predict_runs_on_many_tracks_at_once():
    kf = KalmanBoxFilter()
    states = [kf.initiate(np.array([x, 10.0, 1.0, 20.0])) for x in (5.0, 50.0, 500.0)]
    means, covs = kf.predict(np.stack([m for m, _ in states]), np.stack([c for _, c in states]))
    assert means.shape == (3, 8) and covs.shape == (3, 8, 8)
    one, _ = kf.predict(states[1][0][None], states[1][1][None])
    np.testing.assert_allclose(means[1], one[0])


def test_iou_matrix_agrees_with_the_reference_helper():
    rng = np.random.default_rng(0)
    a = np.sort(rng.random((5, 2, 2)), axis=1).transpose(0, 2, 1).reshape(5, 4)[:, [0, 2, 1, 3]]
    b = np.sort(rng.random((4, 2, 2)), axis=1).transpose(0, 2, 1).reshape(4, 4)[:, [0, 2, 1, 3]]
    m = iou_matrix(a, b)
    for i in range(5):
        for j in range(4):
            assert m[i, j] == pytest.approx(iou(a[i], b[j]))
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)


def test_assignment_is_optimal_within_the_limit():
    cost = np.array([[0.1, 0.2], [0.15, 0.9]])
    matches, rows, cols = linear_assignment(cost, 0.5)
    assert sorted(matches) == [(0, 1), (1, 0)] and rows == [] and cols == []


def test_assignment_never_takes_a_pair_over_the_limit():
    cost = np.array([[0.1, 0.6], [0.2, 0.95]])
    matches, rows, cols = linear_assignment(cost, 0.5)
    assert matches == [(0, 0)] and rows == [1] and cols == [1]
    # Leaving both unmatched costs `limit`: one good pair beats two mediocre ones adding up to more.
    matches, _, _ = linear_assignment(np.array([[0.05, 0.45], [0.45, 0.9]]), 0.5)
    assert matches == [(0, 0)]
    assert linear_assignment(np.zeros((0, 3)), 0.5) == ([], [], [0, 1, 2])
