truncated by examples/synth.sh: asset payload not needed by the tests
