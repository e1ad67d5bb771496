/*
 * The bzImage frame of vmm's freestanding test guests. A loader sees a real
 * boot protocol 2.15 header (boot flag, "HdrS", XLF_KERNEL_64) in a 1 KiB setup
 * area (setup_sects = 1), then the protected-mode part, loaded at 1 MiB. The
 * 32-bit entry at 1 MiB is unused (it halts); the 64-bit entry at 1 MiB + 0x200
 * sets a stack and calls guest_main(boot_params) with the zero page that RSI
 * points at. Nothing here assumes more than the 64-bit boot protocol promises.
 */
	.section .setup, "a"
	.org 0x1f1
	.byte 1			/* setup_sects */
	.word 0			/* root_flags */
	.long 0			/* syssize (unused by vmm) */
	.word 0			/* ram_size */
	.word 0			/* vid_mode */
	.word 0			/* root_dev */
	.word 0xaa55		/* boot_flag */
	.byte 0xeb		/* jump */
	.byte hdr_end - 0x202	/* its offset: the header's length */
	.ascii "HdrS"		/* 0x202 */
	.word 0x020f		/* version 2.15 */
	.long 0			/* realmode_swtch */
	.word 0			/* start_sys_seg */
	.word 0			/* kernel_version */
	.byte 0			/* 0x210 type_of_loader */
	.byte 0x01		/* loadflags: LOADED_HIGH */
	.word 0			/* setup_move_size */
	.long 0x100000		/* code32_start */
	.long 0			/* ramdisk_image */
	.long 0			/* ramdisk_size */
	.long 0			/* bootsect_kludge */
	.word 0			/* heap_end_ptr */
	.byte 0, 0		/* ext_loader_ver, ext_loader_type */
	.long 0			/* 0x228 cmd_line_ptr */
	.long 0x7fffffff	/* initrd_addr_max */
	.long 0x200000		/* kernel_alignment */
	.byte 0			/* relocatable_kernel */
	.byte 0			/* min_alignment */
	.word 0x0001		/* 0x236 xloadflags: XLF_KERNEL_64 */
	.long 2047		/* cmdline_size */
	.long 0			/* hardware_subarch */
	.quad 0			/* hardware_subarch_data */
	.long 0			/* payload_offset */
	.long 0			/* payload_length */
	.quad 0			/* setup_data */
	.quad 0x100000		/* pref_address */
	.long 0x100000		/* 0x260 init_size: 1 MiB */
	.long 0			/* handover_offset */
	.long 0			/* kernel_info_offset */
hdr_end:
	.org 0x400

	.section .head, "ax"
	.code32
startup_32:
	hlt
	jmp startup_32

	.org 0x200
	.code64
	.globl startup_64
startup_64:
	lea stack_top(%rip), %rsp
	mov %rsi, %rdi
	call guest_main
1:	hlt
	jmp 1b

	.section .bss
	.balign 16
	.space 16384
stack_top:
	.section .note.GNU-stack, "", @progbits
