"""The stream side: the topology model, the Faust app built from it, and its stages."""
