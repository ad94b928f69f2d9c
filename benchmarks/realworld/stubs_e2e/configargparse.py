"""Stand-in: train_pixor_e2e.py builds its parser with it; the harness never parses arguments."""
import argparse

ArgParser = argparse.ArgumentParser
ArgumentParser = argparse.ArgumentParser
