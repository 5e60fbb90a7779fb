"""tfxray: transfer learning, evaluation and batch scoring for fracture detection on radiographs."""

__version__ = "0.1.0"
