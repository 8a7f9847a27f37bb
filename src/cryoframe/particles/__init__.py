"""2D particle images (tasks layer): stacks from MRCS + RELION STAR, preparation for the
particle encoder, feature extraction, CryoRanker quality ranking and pose clustering.
"""

from cryoframe.particles.cluster import cluster_star, kmeans_pp, knn_split_accuracy
from cryoframe.particles.embed import embed_images, embed_star
from cryoframe.particles.rank import ParticleRanker, load_ranker, rank_star, score_images
from cryoframe.particles.stack import load_prepared_particles, prepare_images, read_particle_table

__all__ = [
    "cluster_star", "kmeans_pp", "knn_split_accuracy", "embed_images", "embed_star",
    "ParticleRanker", "load_ranker", "rank_star", "score_images", "load_prepared_particles",
    "prepare_images", "read_particle_table",
]
