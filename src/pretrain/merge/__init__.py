"""Merging the trained model back with the model it started from (or another) through mergekit:
linear, SLERP, task arithmetic and TIES, one merged model per weight (pretrain.merge.runner)."""
