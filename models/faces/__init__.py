"""Faces in photos: guarded image loading, detection, landmarks, alignment, identity embeddings.

Built on dlib (``dlib-bin`` wheels) and the model files of ``face_recognition_models``; nothing
is downloaded at run time. See ``docs/faces.md``. Typical use for a suspect's photo::

    image, warnings = load_image(upload_bytes)
    faces = detect_faces(image)                    # all faces, largest first, for the UI
    face, more = choose_face(faces, index=None)    # errors / several-faces policy
    face = face_landmarks(image, face, 68)
    aligned = align_face(image, face, bundle.resolution, framing=bundle.framing)  # FFHQ recipe
    embedding = identity_embedding(image, face)
"""
from .alignment import (FFHQ_FRAMING, FRAMINGS, UTKFACE_FRAMING, AlignedFace, Framing, align_face,
                        ffhq_quad, padded_quad)
from .detection import (DEFAULT_MIN_FACE_SIZE, FaceBox, FaceChoice, choose_face, detect_faces,
                        face_landmarks, find_face)
from .errors import (CorruptImageError, FaceError, FaceModelsMissingError, FaceTooSmallError,
                     ImageTooLargeError, NoFaceError, NotAnImageError, SeveralFacesError,
                     UnsupportedImageModeError)
from .identity import (ALIGNED_DETECT_SIDE, ALIGNED_FACE_BOX, SAME_PERSON_THRESHOLD,
                       aligned_detection_scale, aligned_face_count,
                       aligned_face_count_and_embedding,
                       aligned_face_embedding, identity_distance, identity_embedding, same_person)
from .loading import DEFAULT_MAX_PIXELS, LoadedImage, load_image

__all__ = [
    "AlignedFace", "align_face", "ffhq_quad", "padded_quad", "Framing", "FFHQ_FRAMING",
    "UTKFACE_FRAMING", "FRAMINGS",
    "DEFAULT_MIN_FACE_SIZE", "FaceBox", "FaceChoice", "choose_face", "detect_faces",
    "face_landmarks", "find_face",
    "CorruptImageError", "FaceError", "FaceModelsMissingError", "FaceTooSmallError",
    "ImageTooLargeError", "NoFaceError", "NotAnImageError", "SeveralFacesError",
    "UnsupportedImageModeError",
    "ALIGNED_FACE_BOX", "ALIGNED_DETECT_SIDE", "aligned_detection_scale",
    "aligned_face_count",
    "aligned_face_count_and_embedding",
    "SAME_PERSON_THRESHOLD", "aligned_face_embedding", "identity_distance",
    "identity_embedding", "same_person",
    "DEFAULT_MAX_PIXELS", "LoadedImage", "load_image",
]
