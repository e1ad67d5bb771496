/*
 * fsck's problem table, as e2fsck's problem.c: every problem fsck.vmfs reports,
 * in pass order. A row is the problem's code, what -p (preen) does with it and
 * the message, a printf format whose arguments the reporting call supplies
 * (fsck_problem() checks them against it at compile time). -y fixes every
 * problem and -n none; -p fixes those marked PREEN_FIX (counts, copies and
 * types that can be set again from what is on disk, losing nothing) and says
 * "NOT fixed (run fsck.vmfs -y)" for PREEN_NO ones, whose repair drops data
 * (a pointer, an entry, a journal). The comment on a row says what -y does.
 */
#ifndef VMFS_FSCK_PROBLEMS_H
#define VMFS_FSCK_PROBLEMS_H

#define FSCK_PROBLEMS(X)                                                                                            \
	/* pass 1: superblocks, host records, journals */                                                           \
	X(PR_SB_PRIMARY_BAD, PREEN_FIX, "primary superblock is damaged; the backup is intact")     /* copy back */  \
	X(PR_SB_BACKUP_DIFFERS, PREEN_FIX, "backup superblock differs from the primary")         /* rewrite it */  \
	X(PR_HOST_RECORD_BAD, PREEN_FIX, "host slot %u: damaged host record")     /* clear: its journal is free */  \
	X(PR_JOURNAL_EXTENT_BAD, PREEN_NO, "host slot %u: journal extent %llu+%llu is out of range") /* clear */     \
	X(PR_JOURNAL_BLOCK_SHARED, PREEN_NO, "host slot %u: journal block %llu is also used elsewhere") /* none */    \
	X(PR_JOURNAL_SB_BAD, PREEN_NO, "host slot %u: journal superblock is damaged; its transactions are lost")     \
	/* (-y: the journal is made again, empty, its sequence past the old one's) */                               \
	X(PR_KEY_HEADER_LOST, PREEN_NO, "key area: both copies of the key header are damaged: no key opens the "   \
					"datastore")                                            /* nothing */    \
	X(PR_KEY_COPY_BAD, PREEN_FIX, "key area: the %s copy of %s is damaged; the other is intact") /* copy back */\
	X(PR_KEY_COPY_STALE, PREEN_FIX, "key area: the %s copy of %s is older than the other") /* copy back */      \
	X(PR_KEYSLOT_LOST, PREEN_NO, "key area: both copies of %s are damaged: the secret it held opens nothing "  \
				     "now")                                        /* write it empty */             \
	/* pass 2: inodes, block maps, directories, orphan lists */                                                 \
	X(PR_ROOT_BAD, PREEN_NO, "root directory %llu is damaged; made again, empty: what it named goes to "          \
				 "/lost+found")                                                                      \
	X(PR_PTR_BAD, PREEN_NO, "inode %llu%s: block %llu has a bad pointer 0x%llx")     /* clear the pointer */    \
	X(PR_PTR_SHARED, PREEN_NO, "inode %llu%s: block %llu at %llu is also used elsewhere") /* clear the pointer */ \
	X(PR_PTRBLOCK_BAD, PREEN_NO, "inode %llu%s: pointer block %llu is damaged")      /* clear the pointer */    \
	X(PR_PTRBLOCK_EMPTY, PREEN_NO, "inode %llu%s: pointer block %llu maps nothing")  /* clear the pointer */    \
	X(PR_PTRBLOCK_ADDR_BAD, PREEN_NO, "inode %llu%s: bad pointer-block address 0x%llx") /* clear the pointer */ \
	X(PR_REDIR_BAD, PREEN_NO, "inode %llu%s: block %llu has a damaged redirect %llu") /* clear the pointer */   \
	X(PR_CRYPT_BAD, PREEN_NO, "inode %llu%s: its file key is damaged (version %u, flags 0x%x, epoch %u of %u): " \
				  "its %s cannot be read")     /* emptied (a directory's entries go to lost+found) */ \
	X(PR_CRYPT_STRAY, PREEN_FIX, "inode %llu%s: holds key bytes on a datastore without encryption") /* clear */  \
	X(PR_CRYPT_MARK, PREEN_FIX, "inode %llu%s: has a rekey mark (%llu) but no rekey under way") /* clear */      \
	X(PR_ENTRY_WRONG_KEY, PREEN_NO, "directory %llu%s: entry '%s' is filed under the wrong key") /* remove */    \
	X(PR_ENTRY_NO_INODE, PREEN_NO, "directory %llu%s: entry '%s' points at %s %llu")   /* remove the entry */   \
	X(PR_ENTRY_TYPE, PREEN_FIX, "directory %llu%s: entry '%s' has type %u, inode %llu is type %u") /* retype */ \
	X(PR_ENTRY_DIR_LINK, PREEN_NO, "directory %llu%s: entry '%s' is a second link to directory %llu")           \
	/* (-y: remove the entry) */                                                                                \
	X(PR_ENTRY_INODE_SHARED, PREEN_NO, "directory %llu%s: entry '%s' names inode %llu, whose block is used for " \
					   "something else")                              /* remove the entry */    \
	X(PR_DIR_TREE_BAD, PREEN_NO, "directory %llu%s: its tree is damaged; entries are moved to lost+found")      \
	/* (-y: the directory is emptied; what it named is found again in pass 3) */                                \
	X(PR_DIR_COUNT, PREEN_FIX, "directory %llu%s: entry count %llu, should be %llu")  /* set the count */       \
	X(PR_INODE_UNITS, PREEN_FIX, "inode %llu%s: %llu units counted, %llu recorded")   /* set the count */       \
	X(PR_SNAP_LINK_BAD, PREEN_NO, "inode %llu%s: snapshot list links to %llu, which is not one of its "         \
				      "snapshots")                                       /* cut the list there */    \
	X(PR_SNAP_COUNT, PREEN_FIX, "inode %llu%s: %llu snapshots on its list, count says %u") /* set the count */  \
	X(PR_SNAP_PARENT_BAD, PREEN_FIX, "inode %llu%s: snapshot parent %llu is not a snapshot of the file")         \
	/* (-y: no parent) */                                                                                        \
	X(PR_SNAP_PARENT_CYCLE, PREEN_FIX, "inode %llu%s: the snapshot parents of inode %llu lead into a cycle")    \
	/* (-y: that snapshot gets no parent) */                                                                     \
	X(PR_HSTATE_BAD, PREEN_NO, "host slot %u: host state block is damaged")   /* made again, no orphans */      \
	X(PR_ORPHAN_LIST_BAD, PREEN_NO, "host slot %u: orphan list is damaged at inode %llu") /* cut it there */    \
	/* pass 4: link counts (pass 3's reconnections are made after pass 5, below) */                             \
	X(PR_LINK_COUNT, PREEN_FIX, "inode %llu: link count %u, should be %u")            /* set the count */       \
	X(PR_ORPHAN_FLAG, PREEN_FIX, "inode %llu: marked orphan but on no orphan list")   /* clear the flag */      \
	X(PR_DIR_PARENT, PREEN_FIX, "directory %llu: parent %llu, should be %llu")        /* set the parent */      \
	/* pass 5: space accounting */                                                                              \
	X(PR_RC_UNINITED, PREEN_NO, "resource clusters %llu..%llu are in use but not initialised") /* init them */  \
	X(PR_RC_DESC_BAD, PREEN_NO, "resource cluster %llu: descriptor is damaged; rebuilt from the blocks in use")  \
	X(PR_REDIR_SLOT_COUNT, PREEN_FIX, "redirect table %llu slot %u: count %u, should be %u") /* set it */     \
	X(PR_REDIR_USED, PREEN_FIX, "redirect table %llu: %u slots in use, should be %u")   /* set the count */     \
	X(PR_BLOCK_LEAKED, PREEN_FIX, "block %llu: marked in use (0x%x) but nothing uses it") /* free it */         \
	X(PR_BLOCK_UNMARKED, PREEN_FIX, "block %llu: in use but marked free")             /* mark it */             \
	X(PR_BLOCK_COUNT, PREEN_FIX, "block %llu: count 0x%x, should be 0x%x")            /* set the count */       \
	X(PR_RC_FREE_COUNT, PREEN_FIX, "resource cluster %llu: free count %u, should be %u") /* set the count */    \
	X(PR_RC_OWNER_BAD, PREEN_FIX, "resource cluster %llu: owner record is malformed (slot+1 %u of %u)")         \
	/* (-y: clear the owner: placement only, nothing is lost) */                                                \
	X(PR_POOL_HEADER_BAD, PREEN_NO, "pool %llu: header is damaged; rebuilt from the sub-blocks in use")         \
	X(PR_SUBBLOCK_COUNT, PREEN_FIX, "sub-block %llu: count %u, should be %u")         /* set the count */       \
	X(PR_POOL_FREE_COUNT, PREEN_FIX, "pool %llu: free count %u, should be %u")        /* set the count */       \
	/* pass 3's repairs, made once the space is right again */                                                  \
	X(PR_LOSTFOUND_UNLINKED, PREEN_NO, "directory %llu: /lost+found is named by no directory; linked into / " \
					   "again")                                                                 \
	X(PR_INODE_LOST, PREEN_NO, "inode %llu: no directory names it; moved to /lost+found")

#endif
