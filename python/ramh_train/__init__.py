"""ramh_train — training, datasets (RAM-H1200 reader, synthetic phantoms), evaluation and ONNX export for ramh_rt.

Installed with the ``ramh-rt[train]`` extra (torch, onnx, pycocotools, scikit-learn, scipy). The runtime package
:mod:`ramh_rt` never imports this package.
"""
