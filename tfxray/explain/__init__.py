"""Where the network looks: Grad-CAM heatmaps (gradcam.py) and their panels (panels.py).

``METHODS`` is declared here, importing nothing, so the CLI builds its option lists without
loading TensorFlow.
"""

METHODS = ("gradcam", "gradcam++")
