"""WordNet 3.0 synsets: offline access, the noun graph, scopes and presets, ImageNet-format files.

``wordnet``     find WordNet 3.0 (option/env, nltk's path, system install), stage it where nltk
                accepts it, read every noun once into plain columns; the only nltk importer.
``graph``       depths, path counts, descendants and primary parents over plain arrays.
``scopes``      all / physical / class list + ancestors.
``classlists``  every class list: both file formats (classes.tsv, one class per line), the wnid
                pattern, the preset table (ilsvrc2012, imagenet21k); nltk-free, so scan uses it too.
``formats``     the files a build writes, each with its reader.
``build``       ``BuildParams`` / ``build_synsets`` / ``outputs_complete`` (the stage entry point).
``query``       ``show`` and ``stats`` over a built table (or WordNet itself).
"""
