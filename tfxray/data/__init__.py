"""Data: manifests, splits, input builders and pipelines, augmentation, synthetic phantoms.

``SYNTH_TASKS`` names the phantom kinds ``synth.py`` renders, with a line each; declared here,
importing nothing, so ``tfxray synth --help`` lists them without loading numpy or pandas.
"""

SYNTH_TASKS = {
    "wrist": "lateral wrist radiographs, fracture or normal, fracture boxes",
    "spine": "frontal spine radiographs, vertebral fracture or normal, fracture boxes",
    "ct": "CT slice series of a vertebra, benign or malignant lesion, a box on every slice",
    "pelvis": "frontal pelvis radiographs, femoral-neck fractures of graded difficulty, one box per fracture",
    "skeleton": "wrist, ankle, knee, hand and shoulder radiographs, fractures with a box each (detection)",
}
