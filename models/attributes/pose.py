"""Head pose from dlib's 68 landmarks (no learned head): roll from the eye line, yaw from where
the nose tip sits between the two ends of the jaw line.

``roll`` is the angle of the line from the face's right eye to its left eye (degrees, positive
when the face's left eye is lower in the image). For ``yaw`` the landmarks are first rotated
upright; with ``r`` the nose tip's position between jaw points 0 and 16 (0.5 = centred),
``yaw = asin(2r − 1)`` in degrees: 0 frontal, positive when the nose points toward the image's
right. It is a geometric estimate (no 3-D head model), good enough to separate frontal faces
from clearly turned ones; faces where dlib finds no face get ``label`` None.
"""
from __future__ import annotations

import math

import numpy as np

POSE_LABELS = ("frontal", "left", "right")
FRONTAL_YAW = 15.0  # degrees


def pose_from_landmarks(landmarks: np.ndarray) -> dict:
    """68 landmarks [68, 2] (x, y) → ``{"label", "yaw", "roll"}``."""
    lm = np.asarray(landmarks, np.float64).reshape(68, 2)
    eye_r, eye_l = lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)
    dx, dy = eye_l - eye_r
    roll = math.degrees(math.atan2(dy, dx))
    c, s = math.cos(-math.radians(roll)), math.sin(-math.radians(roll))
    upright = (lm - lm.mean(axis=0)) @ np.array([[c, s], [-s, c]])
    left, right, nose = upright[0, 0], upright[16, 0], upright[30, 0]
    r = (nose - left) / (right - left) if right != left else 0.5
    yaw = math.degrees(math.asin(float(np.clip(2.0 * r - 1.0, -1.0, 1.0))))
    label = "frontal" if abs(yaw) < FRONTAL_YAW else ("right" if yaw > 0 else "left")
    return {"label": label, "yaw": round(yaw, 1), "roll": round(roll, 1)}


def head_pose(image: np.ndarray) -> dict:
    """Pose of the largest face in an RGB uint8 image (``label`` None when none is found)."""
    from models.faces import detect_faces

    faces = detect_faces(np.ascontiguousarray(image), upsample=1, landmarks=68)
    if not faces:
        return {"label": None, "yaw": None, "roll": None}
    return pose_from_landmarks(faces[0].landmarks)
